package database_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/goleak"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database/dbtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

//go:embed testdata/migrations
var embedded embed.FS

// migrations holds a widgets table with a primary key and a unique name.
var migrations = func() fs.FS {
	sub, err := fs.Sub(embedded, "testdata/migrations")
	if err != nil {
		panic(err)
	}
	return sub
}()

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openSQLite(t *testing.T, url string) *database.DB {
	t.Helper()
	db, err := database.Open(testContext(t), url, migrations)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func pragma(t *testing.T, db *database.DB, name string) string {
	t.Helper()
	var v string
	if err := db.SQL().QueryRowContext(testContext(t), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func insertWidget(ctx context.Context, db *database.DB, id, name string) error {
	_, err := db.SQL().ExecContext(ctx, `INSERT INTO widgets (id, name) VALUES ($1, $2)`, id, name)
	return err
}

func TestOpenSQLiteURLForms(t *testing.T) {
	tests := []struct {
		name        string
		url         func(dir string) string
		file        string // where the database must end up, relative to dir
		busyTimeout string
		mmapSize    string
	}{
		{"bare path", func(d string) string { return filepath.Join(d, "bare.db") }, "bare.db", "5000", "268435456"},
		{"bare path, missing parents", func(d string) string { return filepath.Join(d, "a", "b", "c.db") }, "a/b/c.db", "5000", "268435456"},
		{"sqlite:// absolute", func(d string) string { return "sqlite://" + filepath.Join(d, "abs.db") }, "abs.db", "5000", "268435456"},
		{"sqlite: path", func(d string) string { return "sqlite:" + filepath.Join(d, "opaque.db") }, "opaque.db", "5000", "268435456"},
		{"file: URI", func(d string) string { return "file:" + filepath.Join(d, "uri.db") }, "uri.db", "5000", "268435456"},
		{"file:// URI with missing parent", func(d string) string { return "file://" + filepath.Join(d, "x", "uri.db") }, "x/uri.db", "5000", "268435456"},
		{"relative path", func(string) string { return "rel/rel.db" }, "rel/rel.db", "5000", "268435456"},
		{"sqlite: relative path", func(string) string { return "sqlite:rel.db" }, "rel.db", "5000", "268435456"},
		{"query overrides a default", func(d string) string { return filepath.Join(d, "q.db") + "?_busy_timeout=1234" }, "q.db", "1234", "268435456"},
		{"alias overrides a default", func(d string) string { return "sqlite:" + filepath.Join(d, "q.db") + "?_timeout=4321" }, "q.db", "4321", "268435456"},
		{"another pragma keeps the map", func(d string) string { return filepath.Join(d, "p.db") + "?_pragma=cache_size(-4096)" }, "p.db", "5000", "268435456"},
		{"the map turned off", func(d string) string { return filepath.Join(d, "p.db") + "?_pragma=mmap_size(0)" }, "p.db", "5000", "0"},
		{"the map sized", func(d string) string { return filepath.Join(d, "p.db") + "?_pragma=MMAP_SIZE(1048576)" }, "p.db", "5000", "1048576"},
		{"the map turned off, schema named", func(d string) string { return filepath.Join(d, "p.db") + "?_pragma=main.mmap_size(0)" }, "p.db", "5000", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			db := openSQLite(t, tt.url(dir))

			if got := db.Dialect(); got != database.DialectSQLite {
				t.Errorf("Dialect() = %q, want %q", got, database.DialectSQLite)
			}
			if _, err := os.Stat(filepath.Join(dir, tt.file)); err != nil {
				t.Errorf("database file: %v", err)
			}
			if err := insertWidget(testContext(t), db, "w1", "one"); err != nil {
				t.Errorf("migrated table unusable: %v", err)
			}
			for name, want := range map[string]string{
				"journal_mode": "wal",
				"foreign_keys": "1",
				"synchronous":  "1", // NORMAL
				"busy_timeout": tt.busyTimeout,
				"mmap_size":    tt.mmapSize,
			} {
				if got := pragma(t, db, name); got != want {
					t.Errorf("PRAGMA %s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestOpenSQLiteInMemory(t *testing.T) {
	db := openSQLite(t, "sqlite::memory:")
	ctx := testContext(t)
	// Each statement may use a different pooled connection; an in-memory
	// database is only one database if the pool keeps a single connection.
	for i := range 5 {
		if err := insertWidget(ctx, db, fmt.Sprint(i), fmt.Sprint("w", i)); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	var n int
	if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM widgets`).Scan(&n); err != nil || n != 5 {
		t.Fatalf("count = %d, %v; want 5", n, err)
	}
}

// TestSQLiteFilesArePrivate: the database file and its WAL and shared
// memory files hold password hashes and session records; only the
// service's user may read them (before: 0644, so any local user could).
// A file created earlier with wider permissions is narrowed at open.
func TestSQLiteFilesArePrivate(t *testing.T) {
	ctx := testContext(t)
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "users.db")
	db := openSQLite(t, "sqlite://"+path)
	if err := insertWidget(ctx, db, "w", "written, so the WAL exists"); err != nil {
		t.Fatal(err)
	}
	modes := map[string]os.FileMode{dir: 0o700, path: 0o600, path + "-wal": 0o600, path + "-shm": 0o600}
	for p, want := range modes {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", filepath.Base(p), got, want)
		}
	}
	_ = db.Close()

	old := filepath.Join(t.TempDir(), "old.db")
	if err := os.WriteFile(old, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	openSQLite(t, old)
	if info, _ := os.Stat(old); info.Mode().Perm() != 0o600 {
		t.Errorf("an existing 0644 database is %v after open, want 0600", info.Mode().Perm())
	}
}

func TestOpenMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "twice.db")
	first := openSQLite(t, path)
	if err := insertWidget(testContext(t), first, "w1", "one"); err != nil {
		t.Fatal(err)
	}
	_ = first.Close()

	// Re-running the migration would fail (table exists) or lose the row.
	second := openSQLite(t, path)
	var n int
	if err := second.SQL().QueryRowContext(testContext(t), `SELECT count(*) FROM widgets`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("count after reopen = %d, %v; want 1", n, err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	aFile := filepath.Join(dir, "file")
	if err := os.WriteFile(aFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	brokenSQL := fstest.MapFS{
		"sqlite/00001_broken.sql": {Data: []byte("-- +goose Up\nCREATE TABLE (;\n")},
	}
	onlyPostgres := fstest.MapFS{
		"postgres/00001_x.sql": {Data: []byte("-- +goose Up\nSELECT 1;\n")},
	}
	const secret = "s3cretpw"
	tests := []struct {
		name        string
		url         string
		migrations  fs.FS
		wantInError string
		unavailable bool
	}{
		{"empty SQLite path", "sqlite:", migrations, "empty SQLite path", false},
		{"parent is a file", filepath.Join(aFile, "db.sqlite"), migrations, "create directory", false},
		{"bad SQLite parameter", filepath.Join(dir, "p.db") + "?_journal_mode=bogus", migrations, "journal_mode", false},
		{"no directory for the dialect", filepath.Join(dir, "m.db"), onlyPostgres, "sqlite/", false},
		{"broken migration", filepath.Join(dir, "b.db"), brokenSQL, "00001_broken.sql", false},
		{"invalid PostgreSQL URL", "postgres://app:" + secret + "@db.internal:notaport/app", nil, "invalid PostgreSQL URL", false},
		{"unparsable PostgreSQL URL", "postgres://app:" + secret + "@db\x7f/app", nil, "invalid PostgreSQL URL", false},
		{"invalid PostgreSQL parameter", "postgres://app:" + secret + "@127.0.0.1/app?sslmode=sometimes", nil, "invalid PostgreSQL URL", false},
		{"PostgreSQL not listening", "postgres://app:" + secret + "@127.0.0.1:1/app?sslmode=disable&connect_timeout=5", nil, "connect to postgres://app:xxxxx@127.0.0.1:1/app", true},
		{"PostgreSQL password in query", "postgresql://app@127.0.0.1:1/app?sslmode=disable&password=" + secret, nil, "connect to", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := database.Open(testContext(t), tt.url, tt.migrations)
			if err == nil {
				_ = db.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tt.url)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantInError) {
				t.Errorf("error %q does not mention %q", msg, tt.wantInError)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error leaks the password: %q", msg)
			}
			if got := database.IsUnavailable(err); got != tt.unavailable {
				t.Errorf("IsUnavailable(%q) = %v, want %v", msg, got, tt.unavailable)
			}
		})
	}
}

func TestOpenPostgresWrongPassword(t *testing.T) {
	serverURL := dbtest.ServerURL(t)
	const wrong = "not-the-Passw0rd"
	u, err := url.Parse(serverURL)
	if err != nil || u.User == nil {
		t.Skipf("%s has no user to give a wrong password", dbtest.PostgresURLEnv)
	}
	u.User = url.UserPassword(u.User.Username(), wrong)

	_, err = database.Open(testContext(t), u.String(), nil)
	if err == nil {
		t.Fatal("Open with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("error leaks the password: %q", err)
	}
	// A wrong password is a configuration error, not an outage to wait out.
	if database.IsUnavailable(err) {
		t.Errorf("IsUnavailable(%q) = true, want false", err)
	}
}

func TestDialectOf(t *testing.T) {
	tests := []struct {
		url  string
		want database.Dialect
	}{
		{"postgres://u:p@host/db", database.DialectPostgres},
		{"postgresql://host/db?sslmode=disable", database.DialectPostgres},
		{"POSTGRES://host/db", database.DialectPostgres},
		{"sqlite:///var/lib/gatehouse/users.db", database.DialectSQLite},
		{"sqlite:users.db", database.DialectSQLite},
		{"file:users.db?mode=rwc", database.DialectSQLite},
		{"/var/lib/gatehouse/users.db", database.DialectSQLite},
		{"users.db", database.DialectSQLite},
		{"postgres.db", database.DialectSQLite},
		{"./data:2026.db", database.DialectSQLite},
		{"", database.DialectSQLite},
		{"postgres:/not-a-server-url", ""},
		{"mysql://x", ""},
		{"mysql:/x", ""},
		{"postgress://host/db", ""},
		{"http://host/db", ""},
	}
	for _, tt := range tests {
		got, err := database.DialectOf(tt.url)
		if got != tt.want || (tt.want == "") != (err != nil) {
			t.Errorf("DialectOf(%q) = %q, %v; want %q", tt.url, got, err, tt.want)
		}
		if err != nil && !strings.Contains(err.Error(), "accepted: postgres://") {
			t.Errorf("DialectOf(%q) error does not name the accepted forms: %v", tt.url, err)
		}
	}
	// Open refuses them too, before touching the file system.
	dir := t.TempDir()
	if _, err := database.Open(context.Background(), "mysql:/"+dir+"/x", nil); err == nil || !strings.Contains(err.Error(), `unknown scheme "mysql:"`) {
		t.Fatalf("Open(mysql:) = %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("Open(mysql:) created %v", entries)
	}
}

func TestDollarPlaceholdersOnBothDialects(t *testing.T) {
	dbtest.Each(t, migrations, func(t *testing.T, db *database.DB) {
		ctx := testContext(t)
		// Out of order and reused: what a shared query text must survive.
		if _, err := db.SQL().ExecContext(ctx,
			`INSERT INTO widgets (id, name, note) VALUES ($2, $1, $2)`, "name-1", "id-1"); err != nil {
			t.Fatalf("insert: %v", err)
		}
		var id, name, note string
		err := db.SQL().QueryRowContext(ctx,
			`SELECT id, name, note FROM widgets WHERE id = $1 AND note = $1 AND name = $2`, "id-1", "name-1").
			Scan(&id, &name, &note)
		if err != nil {
			t.Fatalf("select: %v", err)
		}
		if id != "id-1" || name != "name-1" || note != "id-1" {
			t.Errorf("got (%q, %q, %q), want (id-1, name-1, id-1)", id, name, note)
		}
	})
}

func TestIsUniqueViolation(t *testing.T) {
	dbtest.Each(t, migrations, func(t *testing.T, db *database.DB) {
		ctx := testContext(t)
		if err := insertWidget(ctx, db, "w1", "one"); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			err  error
			want bool
		}{
			{"unique column", insertWidget(ctx, db, "w2", "one"), true},
			{"primary key", insertWidget(ctx, db, "w1", "two"), true},
			{"wrapped", fmt.Errorf("store: %w", insertWidget(ctx, db, "w3", "one")), true},
			{"not null", func() error {
				_, err := db.SQL().ExecContext(ctx, `INSERT INTO widgets (id, name) VALUES ($1, NULL)`, "w4")
				return err
			}(), false},
			{"syntax error", func() error {
				_, err := db.SQL().ExecContext(ctx, `INSERT INTO nowhere VALUES (1)`)
				return err
			}(), false},
			{"no rows", db.SQL().QueryRowContext(ctx, `SELECT id FROM widgets WHERE id = 'none'`).Scan(new(string)), false},
			{"nil", nil, false},
		}
		for _, tt := range tests {
			if tt.want && tt.err == nil {
				t.Errorf("%s: the statement succeeded, want a constraint violation", tt.name)
				continue
			}
			if got := database.IsUniqueViolation(tt.err); got != tt.want {
				t.Errorf("%s: IsUniqueViolation(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
			}
			if tt.err != nil && database.IsUnavailable(tt.err) {
				t.Errorf("%s: IsUnavailable(%v) = true for an error of the statement", tt.name, tt.err)
			}
		}
	})
}

func TestIsUnavailableClassifiesPlainErrors(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("something else"), false},
		{sql.ErrNoRows, false},
		{context.Canceled, false},
		{driver.ErrBadConn, true},
		{sql.ErrConnDone, true},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), true},
	}
	for _, tt := range tests {
		if got := database.IsUnavailable(tt.err); got != tt.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestIsUnavailableAfterClose(t *testing.T) {
	dbtest.Each(t, migrations, func(t *testing.T, db *database.DB) {
		ctx := testContext(t)
		if err := db.Ping(ctx); err != nil {
			t.Fatalf("Ping before Close: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		errs := map[string]error{
			"ping":   db.Ping(ctx),
			"query":  db.SQL().QueryRowContext(ctx, `SELECT name FROM widgets`).Scan(new(string)),
			"insert": insertWidget(ctx, db, "w1", "one"),
		}
		for op, err := range errs {
			if !database.IsUnavailable(err) {
				t.Errorf("%s on a closed DB: IsUnavailable(%v) = false", op, err)
			}
		}
	})
}

func TestIsUnavailableWhenServerEndsSession(t *testing.T) {
	dbtest.Each(t, migrations, func(t *testing.T, db *database.DB) {
		if db.Dialect() != database.DialectPostgres {
			t.Skip("a server-side disconnect exists only on PostgreSQL")
		}
		ctx := testContext(t)
		conn, err := db.SQL().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = conn.ExecContext(ctx, `SELECT pg_terminate_backend(pg_backend_pid())`)
		if err == nil {
			t.Fatal("terminating the own backend succeeded without an error")
		}
		if !database.IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = false", err)
		}
	})
}

func TestIsUnavailableWhenSQLiteStaysLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locked.db")
	holder := openSQLite(t, path)
	waiter := openSQLite(t, path+"?_busy_timeout=50")
	ctx := testContext(t)

	tx, err := holder.SQL().BeginTx(ctx, nil) // BEGIN IMMEDIATE: takes the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()

	err = insertWidget(ctx, waiter, "w1", "one")
	if err == nil {
		t.Fatal("write succeeded while another connection held the write lock")
	}
	if !database.IsUnavailable(err) {
		t.Errorf("IsUnavailable(%v) = false", err)
	}
	if database.IsUniqueViolation(err) {
		t.Errorf("IsUniqueViolation(%v) = true", err)
	}
}

// TestConcurrentWriters runs transactions that read before they write, the
// pattern that fails at once with SQLITE_BUSY under SQLite's default
// deferred transactions however long the busy timeout is.
func TestConcurrentWriters(t *testing.T) {
	dbtest.Each(t, migrations, func(t *testing.T, db *database.DB) {
		const writers, perWriter = 8, 20
		ctx := testContext(t)
		var wg sync.WaitGroup
		errs := make(chan error, writers*perWriter)
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					errs <- readThenWrite(ctx, db, fmt.Sprintf("w%d-%d", w, i))
				}
			})
		}
		wg.Wait()
		close(errs)
		failed := 0
		for err := range errs {
			if err != nil {
				failed++
				if failed <= 3 {
					t.Errorf("transaction failed: %v", err)
				}
			}
		}
		if failed > 0 {
			t.Fatalf("%d of %d transactions failed", failed, writers*perWriter)
		}
		var n int
		if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM widgets`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != writers*perWriter {
			t.Errorf("count = %d, want %d", n, writers*perWriter)
		}
	})
}

func readThenWrite(ctx context.Context, db *database.DB, id string) error {
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM widgets`).Scan(&n); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO widgets (id, name, note) VALUES ($1, $1, $2)`, id, fmt.Sprint(n)); err != nil {
		return err
	}
	return tx.Commit()
}

// TestPreparedQueries: QueryRow and Query reuse one prepared statement per
// query text, concurrently, on both dialects, and fail cleanly once the
// database is closed.
func TestPreparedQueries(t *testing.T) {
	dbtest.Each(t, migrations, func(t *testing.T, db *database.DB) {
		ctx := testContext(t)
		for i := range 5 {
			if err := insertWidget(ctx, db, fmt.Sprintf("w%d", i), fmt.Sprintf("name%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		countRows := func(ctx context.Context, db *database.DB, want int) error {
			rows, err := db.Query(ctx, `SELECT id FROM widgets WHERE id > $1 ORDER BY id`, "w1")
			if err != nil {
				return err
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				n++
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if n != want {
				return fmt.Errorf("got %d rows, want %d", n, want)
			}
			return nil
		}
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var name string
				errs <- db.QueryRow(ctx, `SELECT name FROM widgets WHERE id = $1`, "w3").Scan(&name)
				errs <- countRows(ctx, db, 3)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		_ = db.Close()
		var name string
		if err := db.QueryRow(ctx, `SELECT name FROM widgets WHERE id = $1`, "w3").Scan(&name); !database.IsUnavailable(err) {
			t.Fatalf("QueryRow with a prepared statement on a closed database = %v, want an unavailable error", err)
		}
		if err := countRows(ctx, db, 3); !database.IsUnavailable(err) {
			t.Fatalf("Query with a prepared statement on a closed database = %v, want an unavailable error", err)
		}
	})
}

// TestOpenPostgresSilentServerTimesOut: a server that takes the TCP
// connection and never answers (what a dead pod behind dropped packets
// looks like) costs one connect timeout, reported as unavailable, not the
// minutes TCP would wait.
func TestOpenPostgresSilentServerTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() { // accept and hold every connection, say nothing
		var held []net.Conn
		defer func() {
			for _, c := range held {
				_ = c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	tests := []struct {
		name    string
		query   string
		atLeast time.Duration
		within  time.Duration
	}{
		{"default timeout", "sslmode=disable", 1500 * time.Millisecond, 5 * time.Second},
		{"connect_timeout in the URL", "sslmode=disable&connect_timeout=1", 900 * time.Millisecond, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The context's deadline only keeps a regression from hanging the run.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			db, err := database.Open(ctx, "postgres://app:pw@"+l.Addr().String()+"/app?"+tt.query, nil)
			took := time.Since(start)
			if err == nil {
				_ = db.Close()
				t.Fatal("Open succeeded against a silent server")
			}
			if !database.IsUnavailable(err) {
				t.Errorf("IsUnavailable(%v) = false", err)
			}
			if took < tt.atLeast || took > tt.within {
				t.Errorf("Open gave up after %s, want between %s and %s", took, tt.atLeast, tt.within)
			}
		})
	}
}
