package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"

	"github.com/gatehouse-dev/gatehouse/services/internal/auth"
	authstore "github.com/gatehouse-dev/gatehouse/services/internal/auth/store"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database/dbtest"
	userstore "github.com/gatehouse-dev/gatehouse/services/internal/user/store"
)

// TestSeededRowsAreWhatTheServicesRead seeds both databases on SQLite and
// PostgreSQL and reads the rows back through the services' own stores: a
// seeded user is found by id and email and pages like any other, its hash
// verifies the seeding password, and a written refresh token rotates.
func TestSeededRowsAreWhatTheServicesRead(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			userURL, authURL := "sqlite://"+filepath.Join(t.TempDir(), "user.db"), "sqlite://"+filepath.Join(t.TempDir(), "auth.db")
			if dialect == "postgres" {
				userURL, authURL = dbtest.PostgresURL(t), dbtest.PostgresURL(t)
			}
			tokens := filepath.Join(t.TempDir(), "tokens")
			var out bytes.Buffer
			ctx := context.Background()
			err := run(ctx, []string{"-user-db", userURL, "-users", "250", "-auth-db", authURL, "-families", "700",
				"-tokens", tokens, "-token-count", "5", "-batch", "100", "-argon2id-memory-kib", "64", "-password", "pw of the seed"}, &out)
			if err != nil {
				t.Fatalf("seed: %v\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), "250 users") || !strings.Contains(out.String(), "700 refresh families") {
				t.Errorf("printed %q", out.String())
			}

			udb, err := database.Open(ctx, userURL, userstore.Migrations)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = udb.Close() })
			users := userstore.New(udb)
			page, err := users.List(ctx, "", 1000)
			if err != nil || len(page) != 250 {
				t.Fatalf("List: %d users, %v", len(page), err)
			}
			u, err := users.GetByEmail(ctx, page[100].Email)
			if err != nil || u.ID != page[100].ID {
				t.Fatalf("GetByEmail(%s) = %v, %v", page[100].Email, u.ID, err)
			}
			if ok, err := argon2id.ComparePasswordAndHash("pw of the seed", u.PasswordHash); err != nil || !ok {
				t.Fatalf("the seeded hash does not verify the password: %v %v", ok, err)
			}

			adb, err := database.Open(ctx, authURL, authstore.Migrations)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = adb.Close() })
			var families int
			if err := adb.SQL().QueryRowContext(ctx, `SELECT count(DISTINCT user_id) FROM refresh_families`).Scan(&families); err != nil || families != 250 {
				t.Fatalf("families spread over %d users (%v), want all 250", families, err)
			}
			f, err := os.Open(tokens)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = f.Close() }()
			var lines []string
			for sc := bufio.NewScanner(f); sc.Scan(); {
				lines = append(lines, sc.Text())
			}
			if len(lines) != 5 {
				t.Fatalf("%d tokens written, want 5", len(lines))
			}
			sum := sha256.Sum256([]byte(lines[0]))
			now := time.Now()
			fam, err := authstore.New(adb).Rotate(ctx, hex.EncodeToString(sum[:]), auth.RefreshToken{
				Hash: strings.Repeat("ab", 32), IssuedAt: now, IdleExpiresAt: now.Add(time.Hour),
			}, now, 0)
			if err != nil || fam.UserID == "" {
				t.Fatalf("rotating a seeded token: %+v, %v", fam, err)
			}
		})
	}
}

func TestSeedRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-user-db", "sqlite://x", "-users", "0"},
		{"-user-db", "sqlite://x", "-families", "3"},
		{"-user-db", "sqlite://x", "-batch", "0"},
		{"-user-db", "mysql://x"},
	} {
		if err := run(context.Background(), args, new(bytes.Buffer)); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
