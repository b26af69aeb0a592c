package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	tests := []struct {
		name, in, want, secret string
	}{
		{"password in user info",
			"postgres://app:hunter2@db:5432/users?sslmode=disable",
			"postgres://app:xxxxx@db:5432/users?sslmode=disable", "hunter2"},
		{"escaped characters",
			"postgresql://app:p%40ss%2Fw0rd@db/users",
			"postgresql://app:xxxxx@db/users", "w0rd"},
		{"password in query",
			"postgres://app@db/users?sslmode=require&password=hunter2",
			"postgres://app@db/users?password=xxxxx&sslmode=require", "hunter2"},
		{"sslpassword in query",
			"postgres://db/users?sslpassword=hunter2",
			"postgres://db/users?sslpassword=xxxxx", "hunter2"},
		{"unescaped slash in password",
			"postgres://app:hun/ter2@db/users",
			"postgres://app:xxxxx@db/users", "ter2"},
		{"unescaped slash, digits before it",
			"postgres://app:123/hunter2@db/users",
			"postgres://app:xxxxx@db/users", "123"},
		{"unescaped hash in password",
			"postgres://app:hun#ter2@db/users",
			"postgres://app:xxxxx@db/users", "ter2"},
		{"unescaped question mark in password",
			"postgres://app:hun?ter2@db/users",
			"postgres://app:xxxxx@db/users", "ter2"},
		{"unescaped at sign in password",
			"postgres://app:hun@ter2@db/users",
			"postgres://app:xxxxx@db/users", "ter2"},
		{"key/value connection string",
			"host=db user=app password=hunter2 dbname=users",
			"host=db user=app password=xxxxx dbname=users", "hunter2"},
		{"user without password", "postgres://app@db/users", "postgres://app@db/users", ""},
		{"no credentials", "postgres://db/users?sslmode=disable", "postgres://db/users?sslmode=disable", ""},
		{"SQLite path", "/var/lib/gatehouse/users.db", "/var/lib/gatehouse/users.db", ""},
		{"SQLite URL", "sqlite:///var/lib/users.db?_busy_timeout=100", "sqlite:///var/lib/users.db?_busy_timeout=100", ""},
		{"file URI", "file:users.db?mode=rwc", "file:users.db?mode=rwc", ""},
		{"empty", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := URL(tt.in)
			if got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if tt.secret != "" && strings.Contains(got, tt.secret) {
				t.Errorf("URL(%q) = %q still contains %q", tt.in, got, tt.secret)
			}
		})
	}
}

// FuzzURL checks that a password placed in the user info never
// survives redaction, whatever the other parts look like.
func FuzzURL(f *testing.F) {
	f.Add("postgres", "app", "hunter2", "db:5432/users?sslmode=disable")
	f.Add("postgresql", "app", "p/ss#w?rd", "db/users")
	f.Add("postgres", "a@b", "123", "db/x@y")
	f.Add("postgres", "app", "s3cret", "db/users?password=other")
	f.Fuzz(func(t *testing.T, scheme, user, password, rest string) {
		in := scheme + "://" + user + ":" + password + "@" + rest
		got := URL(in)
		if len(password) < 3 || strings.Contains(scheme+"://"+user+"@"+rest+"xxxxx", password) ||
			strings.Contains(user, ":") {
			// The password cannot be told apart from the other parts.
			return
		}
		if strings.Contains(got, password) {
			t.Errorf("URL(%q) = %q still contains %q", in, got, password)
		}
	})
}
