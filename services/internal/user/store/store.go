// Package store keeps users in SQL: SQLite or PostgreSQL, through one set of
// queries. It implements user.Store.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/user"
)

//go:embed migrations
var embedded embed.FS

// Migrations is the schema, a goose SQL file per version in sqlite/ and
// postgres/; pass it to database.Open.
var Migrations = database.MigrationsDir(embedded)

// Store is a user.Store on a database opened with Migrations.
type Store struct {
	db *database.DB
}

var _ user.Store = (*Store)(nil)

// New returns a Store on db.
func New(db *database.DB) *Store {
	return &Store{db: db}
}

const columns = `id, email, display_name, roles, password_hash, create_time, update_time`

// Create inserts u. Zero times are set to now. ErrEmailTaken if another
// user has the same email, compared case-insensitively.
func (s *Store) Create(ctx context.Context, u user.User) error {
	if u.ID == "" {
		return errors.New("user store: create: empty id")
	}
	now := time.Now()
	roles, err := database.EncodeStrings(u.Roles)
	if err != nil {
		return fmt.Errorf("user store: create: %w", err)
	}
	_, err = s.db.SQL().ExecContext(ctx,
		`INSERT INTO users (`+columns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		u.ID, u.Email, u.DisplayName, roles, u.PasswordHash,
		database.Timestamp(u.CreateTime, now), database.Timestamp(u.UpdateTime, now))
	if err != nil {
		return storeError("create", err)
	}
	return nil
}

// Get returns the user with id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (user.User, error) {
	u, err := scanUser(s.db.QueryRow(ctx,
		`SELECT `+columns+` FROM users WHERE id = $1`, id))
	if err != nil {
		return user.User{}, storeError("get", err)
	}
	return u, nil
}

// GetByEmail returns the user with email, compared case-insensitively, or
// ErrNotFound.
func (s *Store) GetByEmail(ctx context.Context, email string) (user.User, error) {
	u, err := scanUser(s.db.QueryRow(ctx,
		`SELECT `+columns+` FROM users WHERE lower(email) = lower($1)`, email))
	if err != nil {
		return user.User{}, storeError("get by email", err)
	}
	return u, nil
}

// List returns up to limit users with id > afterID in id order; an empty
// afterID starts at the beginning. UUIDv7 ids sort by creation time, so
// pages are stable while users are added.
func (s *Store) List(ctx context.Context, afterID string, limit int) ([]user.User, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("user store: list: limit %d is not positive", limit)
	}
	rows, err := s.db.Query(ctx,
		`SELECT `+columns+` FROM users WHERE id > $1 ORDER BY id LIMIT $2`, afterID, limit)
	if err != nil {
		return nil, storeError("list", err)
	}
	defer rows.Close()
	users := make([]user.User, 0, min(limit, 100))
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, storeError("list", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError("list", err)
	}
	return users, nil
}

// Update replaces the email, display name, roles, password hash and update
// time of the user with u.ID; a zero u.UpdateTime means now. ErrNotFound if
// there is no such user, ErrEmailTaken if the new email belongs to another.
func (s *Store) Update(ctx context.Context, u user.User) error {
	roles, err := database.EncodeStrings(u.Roles)
	if err != nil {
		return fmt.Errorf("user store: update: %w", err)
	}
	res, err := s.db.SQL().ExecContext(ctx,
		`UPDATE users SET email = $2, display_name = $3, roles = $4, password_hash = $5, update_time = $6 WHERE id = $1`,
		u.ID, u.Email, u.DisplayName, roles, u.PasswordHash, database.Timestamp(u.UpdateTime, time.Now()))
	if err != nil {
		return storeError("update", err)
	}
	return requireOneRow("update", res)
}

// Delete removes the user with id, or returns ErrNotFound.
func (s *Store) Delete(ctx context.Context, id string) error {
	res, err := s.db.SQL().ExecContext(ctx, `DELETE FROM users WHERE id = $1`, id)
	if err != nil {
		return storeError("delete", err)
	}
	return requireOneRow("delete", res)
}

// Ping reports ErrUnavailable unless the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.Ping(ctx); err != nil {
		return fmt.Errorf("user store: ping: %w: %w", user.ErrUnavailable, err)
	}
	return nil
}

func requireOneRow(op string, res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return storeError(op, err)
	}
	if n == 0 {
		return fmt.Errorf("user store: %s: %w", op, user.ErrNotFound)
	}
	return nil
}

// storeError maps a driver error to the user sentinels. The driver error
// stays in the chain for errors.As and logs; callers show clients only what
// the sentinel says.
func storeError(op string, err error) error {
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("user store: %s: %w", op, user.ErrNotFound)
	case database.IsUniqueViolation(err):
		// Ids are fresh UUIDv7s, so the email index is the one that can
		// conflict.
		return fmt.Errorf("user store: %s: %w: %w", op, user.ErrEmailTaken, err)
	case database.IsUnavailable(err):
		return fmt.Errorf("user store: %s: %w: %w", op, user.ErrUnavailable, err)
	default:
		return fmt.Errorf("user store: %s: %w", op, err)
	}
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

func scanUser(row scanner) (user.User, error) {
	var (
		u     user.User
		roles string
	)
	err := row.Scan(&u.ID, &u.Email, &u.DisplayName, &roles, &u.PasswordHash, &u.CreateTime, &u.UpdateTime)
	if err != nil {
		return user.User{}, err
	}
	if u.Roles, err = database.DecodeStrings(roles); err != nil {
		return user.User{}, fmt.Errorf("roles of user %s: %w", u.ID, err)
	}
	u.CreateTime = u.CreateTime.UTC()
	u.UpdateTime = u.UpdateTime.UTC()
	return u, nil
}
