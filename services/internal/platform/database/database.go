package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/redact"
)

// Dialect names the SQL dialect behind a DB.
type Dialect string

// Supported dialects. The values double as the names of the per-dialect
// migration directories.
const (
	DialectSQLite   Dialect = "sqlite"
	DialectPostgres Dialect = "postgres"
)

// AcceptedURLs names the forms of database URL Open takes, for messages.
const AcceptedURLs = "postgres://..., postgresql://..., sqlite://PATH, sqlite:PATH, file:PATH (an SQLite URI) or a plain file path"

// scheme is a URL scheme at the start of a string (RFC 3986).
var scheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*):`)

// DialectOf reports which dialect Open picks for url: PostgreSQL for
// postgres:// and postgresql:// URLs, SQLite for sqlite:, file: and plain
// paths. Any other scheme is an error rather than a file name: before,
// DATABASE_URL=mysql://x (or a typo like postgress://) quietly created an
// SQLite file named "mysql:/x" and reported SERVING.
func DialectOf(url string) (Dialect, error) {
	m := scheme.FindStringSubmatch(url)
	if m == nil {
		return DialectSQLite, nil // a plain path
	}
	switch strings.ToLower(m[1]) {
	case "postgres", "postgresql":
		if !strings.HasPrefix(url[len(m[0]):], "//") {
			return "", fmt.Errorf("%s: URL is not %s://host/database; accepted: %s", m[1], m[1], AcceptedURLs)
		}
		return DialectPostgres, nil
	case "sqlite", "file":
		return DialectSQLite, nil
	default:
		return "", fmt.Errorf("unknown scheme %q; accepted: %s", m[1]+":", AcceptedURLs)
	}
}

// DB is an open, migrated database.
type DB struct {
	sql     *sql.DB
	dialect Dialect
	url     string // redacted
	// pgConfig is the PostgreSQL connection settings, for Listen; nil on SQLite.
	pgConfig *pgx.ConnConfig
	stmts    sync.Map // query text → *sql.Stmt, see stmt
	closed   atomic.Bool
}

// Open connects to url, checks the connection and applies the migrations in
// migrations/<dialect> (for example sqlite/00001_users.sql). A nil
// migrations skips migrating.
//
// SQLite URLs may be sqlite://path, sqlite:path, file:path (an SQLite URI,
// passed on whole) or a bare path; sqlite:///abs/path is absolute. The
// parent directory is created if missing. Query parameters understood by
// modernc.org/sqlite (for example _busy_timeout) override the defaults Open
// sets: WAL journal, busy_timeout 5000 ms, foreign_keys on, synchronous
// NORMAL, BEGIN IMMEDIATE transactions.
//
// ctx bounds connecting and migrating; without a deadline an unreachable
// server can hold Open for as long as the OS takes to give up on TCP.
// Errors never contain the password from url. A failure to reach the
// database wraps the driver error, so IsUnavailable reports it and callers
// can decide to retry.
func Open(ctx context.Context, url string, migrations fs.FS) (*DB, error) {
	dialect, err := DialectOf(url)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	db := &DB{dialect: dialect, url: redact.URL(url)}
	switch db.dialect {
	case DialectPostgres:
		db.sql, db.pgConfig, err = openPostgres(ctx, url)
	default:
		db.sql, err = openSQLite(ctx, url)
	}
	if err != nil {
		return nil, err
	}
	if migrations != nil {
		if err := migrate(ctx, db, migrations); err != nil {
			_ = db.sql.Close()
			return nil, fmt.Errorf("database: migrate %s: %w", db.url, err)
		}
	}
	return db, nil
}

// SQL returns the underlying pool, for queries and for tuning its limits.
func (db *DB) SQL() *sql.DB { return db.sql }

// Dialect reports whether db is SQLite or PostgreSQL.
func (db *DB) Dialect() Dialect { return db.dialect }

// String returns the database URL with its password masked, for logs.
func (db *DB) String() string { return db.url }

// Ping checks that the database is reachable.
func (db *DB) Ping(ctx context.Context) error {
	return db.sql.PingContext(ctx)
}

// Close closes the pool. It is safe to call more than once.
func (db *DB) Close() error {
	// Queries after Close bypass the closed statements (whose error,
	// "sql: statement is closed", says nothing of the database) and get
	// database/sql's closed-database error, which IsUnavailable knows.
	db.closed.Store(true)
	db.stmts.Range(func(_, v any) bool {
		_ = v.(*sql.Stmt).Close()
		return true
	})
	return db.sql.Close()
}

// QueryRow is sql.DB.QueryRowContext through a statement prepared once
// (per pooled connection, as database/sql does) and reused: parsing SQL
// was a fifth of a GetUser's CPU on SQLite before (make bench -profile).
func (db *DB) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := db.stmt(ctx, query); st != nil { //nolint:sqlclosecheck // cached; Close closes it
		return st.QueryRowContext(ctx, args...)
	}
	return db.sql.QueryRowContext(ctx, query, args...)
}

// Query is sql.DB.QueryContext through a reused prepared statement.
func (db *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := db.stmt(ctx, query); st != nil { //nolint:sqlclosecheck // cached; Close closes it
		return st.QueryContext(ctx, args...)
	}
	return db.sql.QueryContext(ctx, query, args...)
}

// stmt returns the cached prepared statement for query, preparing it on
// first use. It returns nil when preparing fails (the database is down,
// say): the caller then runs the query unprepared and reports that error,
// and the next call tries to prepare again.
func (db *DB) stmt(ctx context.Context, query string) *sql.Stmt {
	if db.closed.Load() {
		return nil
	}
	if v, ok := db.stmts.Load(query); ok {
		return v.(*sql.Stmt)
	}
	st, err := db.sql.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	if v, loaded := db.stmts.LoadOrStore(query, st); loaded {
		_ = st.Close() //nolint:sqlclosecheck // another caller prepared it first; this copy is unused
		return v.(*sql.Stmt)
	}
	return st
}

// sanitizedError carries a message from which a secret has been removed
// while still unwrapping to the original error for errors.Is/As.
type sanitizedError struct {
	msg string
	err error
}

func (e *sanitizedError) Error() string { return e.msg }
func (e *sanitizedError) Unwrap() error { return e.err }

// wrapf builds an error "prefix: cause" in which secret never appears, even
// if the driver quoted it in its own message.
func wrapf(err error, secret, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...) + ": " + err.Error()
	if secret != "" {
		msg = strings.ReplaceAll(msg, secret, redact.Mask)
	}
	return &sanitizedError{msg: msg, err: err}
}

var errEmptyPath = errors.New("empty SQLite path")
