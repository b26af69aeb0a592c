package dbtest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"testing/fstest"

	"go.uber.org/goleak"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database/dbtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var migrations = fstest.MapFS{
	"sqlite/00001_things.sql":   {Data: []byte("-- +goose Up\nCREATE TABLE things (id TEXT PRIMARY KEY);\n")},
	"postgres/00001_things.sql": {Data: []byte("-- +goose Up\nCREATE TABLE things (id text PRIMARY KEY);\n")},
}

// childEnv marks a run of this test binary started by a test below.
const childEnv = "DBTEST_CHILD"

func TestEachGivesMigratedDatabases(t *testing.T) {
	var ran []database.Dialect
	dbtest.Each(t, migrations, func(t *testing.T, db *database.DB) {
		ran = append(ran, db.Dialect())
		if t.Name() != "TestEachGivesMigratedDatabases/"+string(db.Dialect()) {
			t.Errorf("subtest %s runs dialect %s", t.Name(), db.Dialect())
		}
		ctx := context.Background()
		if _, err := db.SQL().ExecContext(ctx, `INSERT INTO things (id) VALUES ($1)`, "a"); err != nil {
			t.Fatalf("migrated table unusable: %v", err)
		}
	})
	if len(ran) == 0 || ran[0] != database.DialectSQLite {
		t.Errorf("dialects run: %v, want sqlite first", ran)
	}
}

// TestEachIsolatesCalls checks that every call gets empty databases, so
// tests cannot see each other's rows.
func TestEachIsolatesCalls(t *testing.T) {
	for range 2 {
		dbtest.Each(t, migrations, func(t *testing.T, db *database.DB) {
			ctx := context.Background()
			if _, err := db.SQL().ExecContext(ctx, `INSERT INTO things (id) VALUES ($1)`, "same"); err != nil {
				t.Fatalf("insert into a fresh database: %v", err)
			}
		})
	}
}

// TestEachWithoutPostgres is what the child process runs.
func TestEachWithoutPostgres(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		t.Skip("run by TestMissingPostgres in a child process")
	}
	dbtest.Each(t, migrations, func(*testing.T, *database.DB) {})
}

func TestMissingPostgres(t *testing.T) {
	tests := []struct {
		name     string
		require  string
		wantFail bool
		wantOut  string
	}{
		{"skipped by default", "", false, "--- SKIP: TestEachWithoutPostgres/postgres"},
		{"fatal when required", "1", true, "--- FAIL: TestEachWithoutPostgres/postgres"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestEachWithoutPostgres$", "-test.v")
			cmd.Env = append(os.Environ(),
				childEnv+"=1",
				dbtest.PostgresURLEnv+"=",
				dbtest.RequirePostgresEnv+"="+tt.require)
			out, err := cmd.CombinedOutput()
			if failed := err != nil; failed != tt.wantFail {
				t.Errorf("child failed = %v (%v), want %v\n%s", failed, err, tt.wantFail, out)
			}
			for _, want := range []string{tt.wantOut, dbtest.PostgresURLEnv, "--- PASS: TestEachWithoutPostgres/sqlite"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("child output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
