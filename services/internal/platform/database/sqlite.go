package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/redact"
)

// sqliteDefaults are applied unless the URL sets the key or its alias.
//
// WAL lets readers run alongside the single writer. BEGIN IMMEDIATE takes
// the write lock when a read-write transaction starts, so the busy timeout
// covers the wait; with the default DEFERRED mode a transaction that reads
// and then writes fails at once with SQLITE_BUSY when another connection
// committed in between, whatever the timeout. Times are written in SQLite's
// own format so date functions and the driver's parser both understand them.
var sqliteDefaults = []struct{ key, alias, value string }{
	{"_busy_timeout", "_timeout", "5000"},
	{"_journal_mode", "_journal", "WAL"},
	{"_foreign_keys", "_fk", "on"},
	{"_synchronous", "_sync", "NORMAL"},
	{"_txlock", "", "immediate"},
	{"_time_format", "", "sqlite"},
}

// sqliteMmapSize is the default mmap_size: SQLite reads the first 256 MiB
// of the file through a memory map instead of copying pages into each
// connection's 2 MiB page cache. Pages are then the kernel's page cache,
// shared by the pool's connections, and a point read whose B-tree pages
// are in it makes no system call: at 100k users a GetUser read went from
// 1.65x to 1.32x the cost at 1k users (make bench-scale). It maps address
// space, not memory; a URL that sets any _pragma=mmap_size(N) wins, and
// _pragma=mmap_size(0) turns it off. The price (SQLite's own caveat): an
// I/O error on a mapped page, or the file truncated under a running
// service, is a SIGBUS that ends the process instead of an error the call
// returns. Either means the volume or an operator has already broken the
// database; a restart then reopens it.
const sqliteMmapSize = 256 << 20

type sqliteTarget struct {
	dsn    string // what modernc.org/sqlite is given
	path   string // file system path of the database file
	memory bool
}

// parseSQLiteURL turns the accepted URL forms into a modernc DSN.
func parseSQLiteURL(raw string) (sqliteTarget, error) {
	name, isURI := raw, false
	lower := strings.ToLower(raw)
	switch {
	case strings.HasPrefix(lower, "sqlite://"):
		name = raw[len("sqlite://"):]
	case strings.HasPrefix(lower, "sqlite:"):
		name = raw[len("sqlite:"):]
	case strings.HasPrefix(lower, "file:"):
		isURI = true
	}
	base, rawQuery, _ := strings.Cut(name, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return sqliteTarget{}, fmt.Errorf("invalid query parameters: %w", err)
	}
	path := base
	if isURI {
		u, err := url.Parse(base)
		if err != nil {
			return sqliteTarget{}, fmt.Errorf("invalid file URI: %w", err)
		}
		path = u.Path
		if u.Opaque != "" { // file:relative/path
			if path, err = url.PathUnescape(u.Opaque); err != nil {
				return sqliteTarget{}, fmt.Errorf("invalid file URI: %w", err)
			}
		}
	}
	t := sqliteTarget{path: path, memory: path == ":memory:" || q.Get("mode") == "memory"}
	if t.path == "" && !t.memory {
		return sqliteTarget{}, errEmptyPath
	}
	for _, d := range sqliteDefaults {
		if q.Has(d.key) || (d.alias != "" && q.Has(d.alias)) {
			continue
		}
		q.Set(d.key, d.value)
	}
	// Any mention of mmap_size counts, "main.mmap_size(0)" and quoted
	// forms included: modernc runs the pragmas in sorted order, so a
	// default added beside the user's could run last and win.
	if !t.memory && !slices.ContainsFunc(q["_pragma"], func(p string) bool {
		return strings.Contains(strings.ToLower(p), "mmap_size")
	}) {
		q.Add("_pragma", fmt.Sprintf("mmap_size(%d)", sqliteMmapSize))
	}
	t.dsn = base + "?" + q.Encode()
	return t, nil
}

// keepPrivate makes the database file exist with mode 0600 before SQLite
// opens it (SQLite creates it 0644 otherwise, whatever the data: here,
// password hashes and session records), and takes group and other access
// away from an existing file and its -wal and -shm companions. SQLite
// gives those companions the database file's own mode when it creates
// them.
func keepPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, info.Mode().Perm()&0o700); err != nil {
				return fmt.Errorf("make %s private: %w", filepath.Base(p), err)
			}
		}
	}
	return nil
}

func openSQLite(ctx context.Context, raw string) (*sql.DB, error) {
	t, err := parseSQLiteURL(raw)
	if err != nil {
		return nil, fmt.Errorf("database: SQLite URL %s: %w", redact.URL(raw), err)
	}
	if !t.memory {
		if dir := filepath.Dir(t.path); dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("database: create directory for SQLite database: %w", err)
			}
		}
		if err := keepPrivate(t.path); err != nil {
			return nil, fmt.Errorf("database: SQLite %s: %w", redact.URL(raw), err)
		}
	}
	db, err := sql.Open("sqlite", t.dsn)
	if err != nil {
		return nil, fmt.Errorf("database: open SQLite %s: %w", redact.URL(raw), err)
	}
	// WAL serves readers in parallel and queues writers on the busy
	// timeout, so a few connections help reads without making writes fail.
	// An in-memory database exists per connection, so it gets exactly one
	// that is never closed.
	conns := max(4, runtime.GOMAXPROCS(0))
	if t.memory {
		conns = 1
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("database: open SQLite %s: %w", redact.URL(raw), err)
	}
	return db, nil
}
