package config

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type sample struct {
	Addr    string        `env:"ADDR" envDefault:":50051"`
	Drain   time.Duration `env:"DRAIN_DELAY" envDefault:"5s"`
	Expiry  Minutes       `env:"JWT_ACCESS_EXPIRY" envDefault:"15m"`
	Secret  Secret        `env:"JWT_SECRET"`
	DB      string        `env:"DATABASE_URL"`
	Reflect bool          `env:"GRPC_REFLECTION" envDefault:"true"`
	Nested  nested        `envPrefix:"OTEL_"`
}

type nested struct {
	Ratio float64 `env:"RATIO" envDefault:"0.1"`
}

func (s *sample) Validate() error {
	if s.Drain > time.Minute {
		return errTooLong
	}
	return nil
}

var errTooLong = &validationError{"DRAIN_DELAY must be at most 1m"}

type validationError struct{ msg string }

func (e *validationError) Error() string { return e.msg }

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		wantErr string // substring; empty means success
		check   func(t *testing.T, s sample)
	}{
		{name: "defaults", check: func(t *testing.T, s sample) {
			if s.Addr != ":50051" || s.Drain != 5*time.Second || s.Expiry.Duration() != 15*time.Minute || !s.Reflect || s.Nested.Ratio != 0.1 {
				t.Errorf("defaults not applied: %+v", s)
			}
		}},
		{name: "integer minutes", env: []string{"JWT_ACCESS_EXPIRY=30"}, check: func(t *testing.T, s sample) {
			if s.Expiry.Duration() != 30*time.Minute {
				t.Errorf("expiry = %v, want 30m", s.Expiry)
			}
		}},
		{name: "go duration", env: []string{"JWT_ACCESS_EXPIRY=1h30m"}, check: func(t *testing.T, s sample) {
			if s.Expiry.Duration() != 90*time.Minute {
				t.Errorf("expiry = %v, want 1h30m", s.Expiry)
			}
		}},
		{name: "nested prefix", env: []string{"OTEL_RATIO=0.5"}, check: func(t *testing.T, s sample) {
			if s.Nested.Ratio != 0.5 {
				t.Errorf("ratio = %v", s.Nested.Ratio)
			}
		}},
		{name: "bad duration names variable and value", env: []string{"DRAIN_DELAY=soon"}, wantErr: `invalid DRAIN_DELAY="soon"`},
		{name: "bad bool", env: []string{"GRPC_REFLECTION=maybe"}, wantErr: `invalid GRPC_REFLECTION="maybe"`},
		{name: "bad nested", env: []string{"OTEL_RATIO=lots"}, wantErr: `invalid OTEL_RATIO="lots"`},
		{name: "zero minutes", env: []string{"JWT_ACCESS_EXPIRY=0"}, wantErr: `invalid JWT_ACCESS_EXPIRY="0"`},
		{name: "negative duration", env: []string{"JWT_ACCESS_EXPIRY=-5m"}, wantErr: `invalid JWT_ACCESS_EXPIRY="-5m"`},
		{name: "garbage minutes", env: []string{"JWT_ACCESS_EXPIRY=15 minutes"}, wantErr: `invalid JWT_ACCESS_EXPIRY="15 minutes"`},
		{name: "two errors both reported", env: []string{"DRAIN_DELAY=x", "GRPC_REFLECTION=y"}, wantErr: `invalid GRPC_REFLECTION="y"`},
		{name: "validate runs", env: []string{"DRAIN_DELAY=2m"}, wantErr: "DRAIN_DELAY must be at most 1m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s sample
			err := Load(&s, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load() error = %v, want containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error spans lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load() error = %v", err)
			}
			tt.check(t, s)
		})
	}
}

func TestAttrsMaskSecrets(t *testing.T) {
	s := sample{}
	if err := Load(&s, []string{"JWT_SECRET=hunter2hunter2hunter2hunter2hunter2", "DATABASE_URL=postgres://app:pa55word@db:5432/users"}); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Log(context.Background(), slog.LevelInfo, "config", Attrs(&s)...)
	out := b.String()
	for _, leak := range []string{"hunter2", "pa55word"} {
		if strings.Contains(out, leak) {
			t.Errorf("config log leaks %q: %s", leak, out)
		}
	}
	for _, want := range []string{"JWT_SECRET=******", "DATABASE_URL=postgres://app:xxxxx@db:5432/users", "OTEL_RATIO=0.1", "JWT_ACCESS_EXPIRY=15m0s"} {
		if !strings.Contains(out, want) {
			t.Errorf("config log lacks %q: %s", want, out)
		}
	}
}

// TestAttrsMaskEveryDSNForm: the start-up log of DATABASE_URL, whatever
// form the URL takes. Before, config had its own redactor, and each of
// these printed the password.
func TestAttrsMaskEveryDSNForm(t *testing.T) {
	for _, dsn := range []string{
		"postgres://app@db/users?sslmode=require&password=s3kr1t",
		"postgres://app:s3k%25r%231t@db/users",
		"postgres://app:s3k#r1t@db/users",
		"host=db user=app password=s3kr1t dbname=users",
		"postgres://app:s3k/r1t@db/users",
	} {
		s := sample{}
		if err := Load(&s, []string{"DATABASE_URL=" + dsn}); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		slog.New(slog.NewJSONHandler(&b, nil)).Log(context.Background(), slog.LevelInfo, "config", Attrs(&s)...)
		for _, leak := range []string{"s3k", "r1t"} {
			if strings.Contains(b.String(), leak) {
				t.Errorf("%s: config log leaks %q: %s", dsn, leak, b.String())
			}
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("topsecret")
	for _, got := range []string{s.String(), s.LogValue().String()} {
		if strings.Contains(got, "topsecret") {
			t.Errorf("secret printed: %q", got)
		}
	}
	if s.Reveal() != "topsecret" {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
}
