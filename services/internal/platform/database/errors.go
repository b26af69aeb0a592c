package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// IsUniqueViolation reports whether err is a unique or primary key
// constraint violation on either database.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505" // unique_violation, primary keys included
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		// modernc.org/sqlite turns on extended result codes, so the kind of
		// constraint is in the code and the message need not be parsed.
		switch liteErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return true
		}
	}
	return false
}

// IsUnavailable reports whether err means the database cannot serve
// requests right now, as opposed to rejecting this one: it is closed,
// unreachable, shutting down, out of connections or disk, timed out, or
// (SQLite) still locked by another writer after the busy timeout. Callers
// may retry such errors later; a cancelled context is not one of them.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgUnavailable(pgErr.Code)
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() & 0xff { // primary code of an extended one
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN,
			sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY:
			return true
		}
		return false
	}
	for _, target := range []error{
		driver.ErrBadConn, sql.ErrConnDone, errDBClosed(), pgconn.ErrConnClosed, ErrRecentlyUnreachable,
		context.DeadlineExceeded, io.ErrUnexpectedEOF,
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var connectErr *pgconn.ConnectError
	var opErr *net.OpError
	var dnsErr *net.DNSError
	return errors.As(err, &connectErr) || pgconn.Timeout(err) ||
		errors.As(err, &opErr) || errors.As(err, &dnsErr)
}

// pgUnavailable reports whether a PostgreSQL SQLSTATE says the server, not
// the statement, is the problem.
func pgUnavailable(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"), // connection_exception
		strings.HasPrefix(code, "53"), // insufficient_resources
		strings.HasPrefix(code, "58"): // system_error (I/O)
		return true
	}
	switch code {
	case "57014", // query_canceled: statement_timeout
		"57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03": // cannot_connect_now: starting up or in recovery
		return true
	}
	return false
}

// errDBClosed returns the error database/sql gives for a closed *sql.DB.
// It is unexported there; obtaining the value itself once lets errors.Is
// match it instead of comparing message text.
var errDBClosed = sync.OnceValue(func() error {
	db := sql.OpenDB(unusedConnector{})
	_ = db.Close()
	return db.PingContext(context.Background())
})

// unusedConnector backs a *sql.DB that is closed before any connection is
// requested.
type unusedConnector struct{}

var errUnused = errors.New("database: unused connector")

func (unusedConnector) Connect(context.Context) (driver.Conn, error) { return nil, errUnused }
func (unusedConnector) Driver() driver.Driver                        { return unusedDriver{} }

type unusedDriver struct{}

func (unusedDriver) Open(string) (driver.Conn, error) { return nil, errUnused }
