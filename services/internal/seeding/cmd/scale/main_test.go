package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database/dbtest"
)

// root is the module root, from this package's directory.
var root = filepath.Join("..", "..", "..", "..", "..")

// TestSmallRun seeds two small sizes, times every operation through the
// stores and through the real services (built from this checkout and
// started on the seeded databases), and checks that each table has every
// row with a figure for each size. A seeded user that could not log in,
// a refresh token the Auth service refused or a short deep page fails the
// run itself.
func TestSmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the services (about 15 s)")
	}
	cases := []struct {
		name string
		args []string
	}{
		{"sqlite", nil},
		{"postgres", []string{"-no-sqlite", "-postgres", ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"-sizes", "30:60,60:120", "-samples", "100", "-concurrency", "2",
				"-root", root, "-dir", t.TempDir()}, c.args...)
			if c.name == "postgres" {
				args[len(args)-1] = dbtest.ServerURL(t)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
			defer cancel()
			var out, log bytes.Buffer
			if err := run(ctx, args, &out, &log); err != nil {
				t.Fatalf("run: %v\n%s", err, log.String())
			}
			text := out.String()
			rows := []string{
				"GetUser (store Get)", "Login lookup (GetByEmail)", "ListUsers, first page of 50", "ListUsers, page 90% deep",
				"RefreshToken (Lookup + Rotate)", "RevokeAllSessions (one user's families)", "background purge, nothing to purge",
				"start: Open + migrations (user database)",
				"GetUser (RPC, admin token, random user)", "ListUsers (RPC), first page of 50", "ListUsers (RPC), page 90% deep",
				"Login (RPC, argon2id), random user", "RefreshToken (RPC)", "RevokeAllSessions (RPC, admin token, random user)",
				"start: User service exec to SERVING (RPC)",
			}
			cell := `[0-9.]+ ms / [0-9.]+ ms, [0-9]+/s, [0-9.]+×`
			for _, r := range rows {
				re := regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(r) + ` \| ` + cell + ` \| ` + cell + ` \|$`)
				if !re.MatchString(text) {
					t.Errorf("no row %q with a figure per size in:\n%s", r, text)
				}
			}
			if !strings.Contains(text, "gRPC calls to the services (user cache off)") {
				t.Errorf("no gRPC table in:\n%s", text)
			}
		})
	}
}

// TestFlags: what the command refuses before it seeds anything.
func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-sizes", "1000"},
		{"-sizes", "a:b"},
		{"-sizes", "10:5"},
		{"-sizes", "0:0"},
		{"-sizes", "10:20,"},
		{"-sizes", "5:10"}, // fewer users than 2 × the 3 rounds
		{"-sizes", "100:1000,10:100"},
		{"-sizes", "100:1000,1000:100"},
		{"-rounds", "0"},
		{"-samples", "99"},
		{"-concurrency", "0"},
		{"-no-sqlite"},
		{"-keep"},
		{"-unknown"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, log bytes.Buffer
			if err := run(context.Background(), args, &out, &log); err == nil {
				t.Errorf("run %v: no error", args)
			}
			if out.Len() != 0 {
				t.Errorf("run %v wrote results: %s", args, out.String())
			}
		})
	}
}
