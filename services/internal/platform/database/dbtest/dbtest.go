package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/redact"
)

// Environment variables that control the PostgreSQL half of Each.
const (
	// PostgresURLEnv names a server URL whose role may CREATE DATABASE.
	PostgresURLEnv = "GATEHOUSE_TEST_POSTGRES_URL"
	// RequirePostgresEnv set to 1 turns a missing PostgresURLEnv from a
	// skip into a failure, so CI cannot pass without PostgreSQL tests.
	RequirePostgresEnv = "GATEHOUSE_REQUIRE_POSTGRES"
)

// setupTimeout bounds creating, migrating and dropping a test database.
const setupTimeout = 30 * time.Second

// Each runs fn as the subtests "sqlite", on a fresh file in t.TempDir(),
// and "postgres", on a fresh database created on the server named by
// GATEHOUSE_TEST_POSTGRES_URL and dropped afterwards. Both are migrated
// with migrations and closed when the subtest ends.
func Each(t *testing.T, migrations fs.FS, fn func(t *testing.T, db *database.DB)) {
	t.Helper()
	t.Run(string(database.DialectSQLite), func(t *testing.T) {
		fn(t, openSQLite(t, migrations))
	})
	t.Run(string(database.DialectPostgres), func(t *testing.T) {
		fn(t, Postgres(t, migrations))
	})
}

// ServerURL returns the PostgreSQL server URL from
// GATEHOUSE_TEST_POSTGRES_URL for tests that need the server itself. If it
// is unset the test is skipped, or fails when GATEHOUSE_REQUIRE_POSTGRES=1.
func ServerURL(t *testing.T) string {
	t.Helper()
	serverURL := os.Getenv(PostgresURLEnv)
	if serverURL == "" {
		msg := fmt.Sprintf("PostgreSQL tests need %s, e.g. "+
			"postgres://gatehouse:gatehouse@127.0.0.1:5432/postgres?sslmode=disable "+
			"(a role allowed to CREATE DATABASE)", PostgresURLEnv)
		if os.Getenv(RequirePostgresEnv) == "1" {
			t.Fatalf("%s=1 but %s", RequirePostgresEnv, msg)
		}
		t.Skip(msg)
	}
	return serverURL
}

func openSQLite(t *testing.T, migrations fs.FS) *database.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	db, err := database.Open(ctx, filepath.Join(t.TempDir(), "test.db"), migrations)
	if err != nil {
		t.Fatalf("open SQLite: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Postgres opens a fresh database on the test server (see PostgresURL),
// migrated with migrations (nil: none), closed and dropped when the test
// ends. For tests of PostgreSQL-only code.
func Postgres(t *testing.T, migrations fs.FS) *database.DB {
	t.Helper()
	dbURL := PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	db, err := database.Open(ctx, dbURL, migrations)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// PostgresURL creates a fresh, empty database on the server named by
// GATEHOUSE_TEST_POSTGRES_URL, returns its URL, and drops it when the test
// ends. Like ServerURL, it skips or fails the test when no server is set.
// For tests that start a whole service against PostgreSQL.
func PostgresURL(t *testing.T) string {
	t.Helper()
	serverURL := ServerURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	admin, err := database.Open(ctx, serverURL, nil)
	if err != nil {
		t.Fatalf("connect to the test server: %v", err)
	}
	name := "gatehouse_test_" + randomHex(t, 8)
	// The name is generated above, never user input, so quoting suffices.
	if _, err := admin.SQL().ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		_ = admin.Close()
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		defer func() { _ = admin.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		// DROP DATABASE fails while anyone is connected, e.g. a connection
		// a failed test left open. Autovacuum workers are left alone: DROP
		// stops them itself, and terminating them needs superuser.
		if _, err := admin.SQL().ExecContext(ctx,
			`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
			name); err != nil {
			t.Errorf("terminate connections to %s: %v", name, err)
		}
		if _, err := admin.SQL().ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`"`); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})

	dbURL, err := withDatabase(serverURL, name)
	if err != nil {
		t.Fatal(err)
	}
	return dbURL
}

// withDatabase returns serverURL pointing at database name instead.
func withDatabase(serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("%s is not a URL: %s", PostgresURLEnv, redact.URL(serverURL))
	}
	u.Path = "/" + name
	u.RawPath = ""
	q := u.Query()
	q.Del("dbname") // would override the path
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
