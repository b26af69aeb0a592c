package ratelimit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
)

// schema is created by NewSQL, not by a service's migrations: the tables
// belong to this package, whichever service uses it, and IF NOT EXISTS
// makes every start a no-op after the first.
const schema = `
CREATE TABLE IF NOT EXISTS rate_limits (
    key        text PRIMARY KEY,
    tokens     double precision NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_limits_updated_at_idx ON rate_limits (updated_at);
CREATE TABLE IF NOT EXISTS rate_limit_marks (
    key   text PRIMARY KEY,
    until timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_limit_marks_until_idx ON rate_limit_marks (until);
`

// schemaLock serialises NewSQL's CREATE ... IF NOT EXISTS across replicas
// starting together, which PostgreSQL does not do by itself (two of them
// can collide on the catalog).
const schemaLock = 0x726174656c696d74 // "ratelimt"

// SQL is a Store in PostgreSQL, shared by every replica that uses the same
// database. Each Take is one statement: an upsert that refills the bucket
// for the time since its last update and takes a token only if there is
// one, so concurrent attempts on several replicas are counted exactly
// (PostgreSQL serialises the upserts of one key on its row).
type SQL struct {
	db *database.DB
}

// NewSQL returns a Store on db, which must be PostgreSQL, creating its
// two tables (rate_limits, rate_limit_marks) if they are missing.
func NewSQL(ctx context.Context, db *database.DB) (*SQL, error) {
	if db.Dialect() != database.DialectPostgres {
		return nil, fmt.Errorf("ratelimit: shared buckets need PostgreSQL, not %s", db.Dialect())
	}
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: schema: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLock)); err != nil {
		return nil, fmt.Errorf("ratelimit: schema: %w", err)
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return nil, fmt.Errorf("ratelimit: schema: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("ratelimit: schema: %w", err)
	}
	return &SQL{db: db}, nil
}

// levelSQL is the SQL twin of bucket.level, for the row r: its tokens refilled
// by the seconds since updated_at (never negative: a replica whose clock is
// behind must not drain the bucket) at $3 seconds per token, capped at the
// burst $2, at time $4.
const levelSQL = `LEAST($2::float8, r.tokens + GREATEST(EXTRACT(EPOCH FROM ($4 - r.updated_at))::float8, 0) / $3::float8)`

// take takes one token from key $1 only if a whole one is there at $4.
// updated_at never goes back.
const take = `INSERT INTO rate_limits AS r (key, tokens, updated_at) VALUES ($1, $2::float8 - 1, $4)
ON CONFLICT (key) DO UPDATE SET
    tokens = ` + levelSQL + ` - 1,
    updated_at = GREATEST(r.updated_at, $4)
WHERE ` + levelSQL + ` >= 1
RETURNING tokens`

// peek is the level of key $1 at $4, for the wait of a refusal.
const peek = `SELECT ` + levelSQL + ` FROM rate_limits r WHERE r.key = $1`

// Take implements Store.
func (s *SQL) Take(ctx context.Context, key string, r Rule, now time.Time) (bool, time.Duration, error) {
	if r.Off() {
		return true, 0, nil
	}
	every := r.Every.Seconds()
	var left float64
	err := s.db.QueryRow(ctx, take, key, r.Burst, every, now).Scan(&left)
	switch {
	case err == nil:
		return true, 0, nil
	case !errors.Is(err, sql.ErrNoRows):
		return false, 0, fmt.Errorf("ratelimit: take: %w", err)
	}
	var have float64
	err = s.db.QueryRow(ctx, peek, key, r.Burst, every, now).Scan(&have)
	if err != nil {
		// Refilled (or purged) in between: the next attempt will tell.
		return false, r.Every, nil //nolint:nilerr // a refusal is the safe answer
	}
	return false, wait(have, r), nil
}

// Refund implements Store.
func (s *SQL) Refund(ctx context.Context, key string, r Rule, _ time.Time) error {
	if r.Off() {
		return nil
	}
	_, err := s.db.SQL().ExecContext(ctx, `UPDATE rate_limits SET tokens = LEAST($2::float8, tokens + 1) WHERE key = $1`, key, r.Burst)
	if err != nil {
		return fmt.Errorf("ratelimit: refund: %w", err)
	}
	return nil
}

// Mark implements Store.
func (s *SQL) Mark(ctx context.Context, key string, until time.Time) error {
	_, err := s.db.SQL().ExecContext(ctx,
		`INSERT INTO rate_limit_marks (key, until) VALUES ($1, $2)
		 ON CONFLICT (key) DO UPDATE SET until = GREATEST(rate_limit_marks.until, EXCLUDED.until)`, key, until)
	if err != nil {
		return fmt.Errorf("ratelimit: mark: %w", err)
	}
	return nil
}

// Marked implements Store.
func (s *SQL) Marked(ctx context.Context, key string, now time.Time) (bool, error) {
	var live bool
	err := s.db.QueryRow(ctx, `SELECT until > $2 FROM rate_limit_marks WHERE key = $1`, key, now).Scan(&live)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("ratelimit: marked: %w", err)
	}
	return live, nil
}

// Purge implements Store.
func (s *SQL) Purge(ctx context.Context, before time.Time) error {
	if _, err := s.db.SQL().ExecContext(ctx, `DELETE FROM rate_limits WHERE updated_at < $1`, before); err != nil {
		return fmt.Errorf("ratelimit: purge buckets: %w", err)
	}
	if _, err := s.db.SQL().ExecContext(ctx, `DELETE FROM rate_limit_marks WHERE until < $1`, before); err != nil {
		return fmt.Errorf("ratelimit: purge marks: %w", err)
	}
	return nil
}
