package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/internal/identity"
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

const columns = `id, email, display_name, roles, password_hash, create_time, update_time, version, session_version`

// Create inserts u at Version 1 (u.Version is ignored). Zero times are set
// to now. ErrEmailTaken if another user has the same email, compared
// case-insensitively.
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
		`INSERT INTO users (`+columns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8)`,
		u.ID, u.Email, u.DisplayName, roles, u.PasswordHash,
		database.Timestamp(u.CreateTime, now), database.Timestamp(u.UpdateTime, now), u.SessionVersion)
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

// updateUser writes the fields a Change sets (a NULL parameter keeps the
// column as it is) and moves the version on, all in one statement, so two
// changes of different fields cannot undo each other whatever the
// interleaving. $8 = 0 makes it unconditional; otherwise it applies only at
// that version.
const updateUser = `UPDATE users SET
	email = COALESCE($2, email),
	display_name = COALESCE($3, display_name),
	roles = COALESCE($4, roles),
	password_hash = COALESCE($5, password_hash),
	session_version = session_version + $6,
	version = version + 1,
	update_time = $7
WHERE id = $1 AND ($8 = 0 OR version = $8)
RETURNING ` + columns

// adminsLock is the PostgreSQL advisory lock that every change of roles
// and every delete takes for its transaction, so "is another admin left?"
// and the write that depends on the answer cannot interleave with another
// such pair (two admins demoting each other at once). SQLite needs none:
// its write transactions begin IMMEDIATE and run one at a time.
const adminsLock = 0x6761746568757365 // "gatehuse"

// Update implements user.Store.Update. A change that sets roles runs in a
// transaction that also checks another admin is left when it takes the
// role away; any other change is the one statement of updateUser.
func (s *Store) Update(ctx context.Context, id string, ch user.Change) (user.User, error) {
	args, err := changeArgs(id, ch)
	if err != nil {
		return user.User{}, fmt.Errorf("user store: update: %w", err)
	}
	if ch.Roles == nil {
		u, err := scanUser(s.db.QueryRow(ctx, updateUser, args...))
		if err != nil {
			return user.User{}, s.missOrStale(ctx, "update", id, err)
		}
		return u, nil
	}
	var u user.User
	err = s.adminTx(ctx, "update", id, ch.IfVersion, func(tx *sql.Tx, wasAdmin bool) error {
		var err error
		u, err = scanUser(tx.QueryRowContext(ctx, updateUser, args...))
		if errors.Is(err, sql.ErrNoRows) {
			// The row was there when this transaction read it, and deletes
			// wait for adminsLock: a change of another field moved the
			// version on in between.
			return user.ErrStale
		}
		if err != nil {
			return err
		}
		if wasAdmin && !u.HasRole(identity.RoleAdmin) {
			return s.requireOtherAdmin(ctx, tx, id)
		}
		return nil
	})
	if err != nil {
		return user.User{}, err
	}
	return u, nil
}

// Delete implements user.Store.Delete.
func (s *Store) Delete(ctx context.Context, id string, ifVersion int64) error {
	return s.adminTx(ctx, "delete", id, ifVersion, func(tx *sql.Tx, wasAdmin bool) error {
		if wasAdmin {
			if err := s.requireOtherAdmin(ctx, tx, id); err != nil {
				return err
			}
		}
		// Conditional on the version too: on PostgreSQL a change of another
		// field (which takes no lock) may commit after adminTx read the
		// version; the DELETE then waits for that row, re-reads it and
		// deletes nothing.
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = $1 AND ($2 = 0 OR version = $2)`, id, ifVersion)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return user.ErrStale
		}
		return nil
	})
}

// adminTx runs fn in a transaction that holds adminsLock, after reading
// the user's version and whether it is an admin now: ErrNotFound when
// there is no such user, ErrStale when ifVersion is set and differs.
func (s *Store) adminTx(ctx context.Context, op, id string, ifVersion int64, fn func(tx *sql.Tx, wasAdmin bool) error) error {
	tx, err := s.db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return storeError(op, err)
	}
	defer func() { _ = tx.Rollback() }()
	if s.db.Dialect() == database.DialectPostgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(adminsLock)); err != nil {
			return storeError(op, err)
		}
	}
	var (
		rolesJSON string
		version   int64
	)
	if err := tx.QueryRowContext(ctx, `SELECT roles, version FROM users WHERE id = $1`, id).Scan(&rolesJSON, &version); err != nil {
		return storeError(op, err)
	}
	if ifVersion != 0 && version != ifVersion {
		return fmt.Errorf("user store: %s: %w", op, user.ErrStale)
	}
	roles, err := database.DecodeStrings(rolesJSON)
	if err != nil {
		return fmt.Errorf("user store: %s: roles of user %s: %w", op, id, err)
	}
	if err := fn(tx, slices.Contains(roles, identity.RoleAdmin)); err != nil {
		if errors.Is(err, user.ErrLastAdmin) || errors.Is(err, user.ErrStale) {
			return fmt.Errorf("user store: %s: %w", op, err)
		}
		return storeError(op, err)
	}
	if err := tx.Commit(); err != nil {
		return storeError(op, err)
	}
	return nil
}

// requireOtherAdmin returns ErrLastAdmin unless a user other than id holds
// the admin role. EXISTS stops at the first one found.
func (s *Store) requireOtherAdmin(ctx context.Context, tx *sql.Tx, id string) error {
	query := `SELECT EXISTS (SELECT 1 FROM users, json_each(users.roles) r WHERE users.id <> $1 AND r.value = $2)`
	if s.db.Dialect() == database.DialectPostgres {
		query = `SELECT EXISTS (SELECT 1 FROM users WHERE id <> $1 AND roles @> jsonb_build_array($2::text))`
	}
	var other bool
	if err := tx.QueryRowContext(ctx, query, id, identity.RoleAdmin).Scan(&other); err != nil {
		return err
	}
	if !other {
		return user.ErrLastAdmin
	}
	return nil
}

// EndSessions implements user.Store.EndSessions. It leaves Version alone:
// the user's visible fields did not change.
func (s *Store) EndSessions(ctx context.Context, id string) (int64, error) {
	var v int64
	err := s.db.QueryRow(ctx,
		`UPDATE users SET session_version = session_version + 1 WHERE id = $1 RETURNING session_version`, id).Scan(&v)
	if err != nil {
		return 0, storeError("end sessions", err)
	}
	return v, nil
}

// changeArgs are updateUser's parameters for ch.
func changeArgs(id string, ch user.Change) ([]any, error) {
	var roles any
	if ch.Roles != nil {
		encoded, err := database.EncodeStrings(*ch.Roles)
		if err != nil {
			return nil, err
		}
		roles = encoded
	}
	var bump int64
	if ch.EndSessions {
		bump = 1
	}
	return []any{id, nullable(ch.Email), nullable(ch.DisplayName), roles, nullable(ch.PasswordHash),
		bump, database.Timestamp(ch.UpdateTime, time.Now()), ch.IfVersion}, nil
}

func nullable(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// missOrStale explains a conditional write that matched no row: the user
// is gone (ErrNotFound) or at another version (ErrStale).
func (s *Store) missOrStale(ctx context.Context, op, id string, err error) error {
	if !errors.Is(err, sql.ErrNoRows) {
		return storeError(op, err)
	}
	var one int
	switch err := s.db.QueryRow(ctx, `SELECT 1 FROM users WHERE id = $1`, id).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("user store: %s: %w", op, user.ErrNotFound)
	case err != nil:
		return storeError(op, err)
	}
	return fmt.Errorf("user store: %s: %w", op, user.ErrStale)
}

// Ping reports ErrUnavailable unless the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.Ping(ctx); err != nil {
		return fmt.Errorf("user store: ping: %w: %w", user.ErrUnavailable, err)
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
	err := row.Scan(&u.ID, &u.Email, &u.DisplayName, &roles, &u.PasswordHash, &u.CreateTime, &u.UpdateTime, &u.Version, &u.SessionVersion)
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
