package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/internal/auth"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
)

//go:embed migrations
var embedded embed.FS

// Migrations is the schema, a goose SQL file per version in sqlite/ and
// postgres/; pass it to database.Open.
var Migrations = database.MigrationsDir(embedded)

// Store is an auth.RefreshStore on a database opened with Migrations.
type Store struct {
	db *database.DB
}

var _ auth.RefreshStore = (*Store)(nil)

// New returns a Store on db.
func New(db *database.DB) *Store {
	return &Store{db: db}
}

// purgeBatch bounds how many families one DELETE of PurgeExpired removes,
// so a large backlog neither holds SQLite's write lock nor builds one huge
// PostgreSQL transaction for long. A variable so tests can shrink it.
var purgeBatch = 200

// CreateFamily stores f and its first token in one transaction. Zero
// f.CreatedAt and first.IssuedAt mean now; first.FamilyID may be empty or
// must equal f.ID.
func (s *Store) CreateFamily(ctx context.Context, f auth.Family, first auth.RefreshToken) error {
	if err := checkFamily(f); err != nil {
		return fmt.Errorf("refresh store: create family: %w", err)
	}
	if err := checkToken(first, f.ID); err != nil {
		return fmt.Errorf("refresh store: create family: first token: %w", err)
	}
	if !first.RotatedAt.IsZero() {
		return errors.New("refresh store: create family: first token is already rotated")
	}
	roles, err := database.EncodeStrings(f.Roles)
	if err != nil {
		return fmt.Errorf("refresh store: create family: %w", err)
	}
	now := time.Now()

	tx, err := s.db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return storeError("create family", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO refresh_families (id, user_id, client_id, roles, session_version, created_at, expires_at, revoked_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		f.ID, f.UserID, f.ClientID, roles, f.SessionVersion, database.Timestamp(f.CreatedAt, now), database.Timestamp(f.ExpiresAt, now), database.NullTimestamp(f.RevokedAt)); err != nil {
		return storeError("create family", err)
	}
	if err := insertToken(ctx, tx, first, f.ID, now); err != nil {
		return storeError("create family", err)
	}
	if err := tx.Commit(); err != nil {
		return storeError("create family", err)
	}
	return nil
}

// Rotate implements auth.RefreshStore.Rotate; the package documentation
// describes the transaction. next.FamilyID may be empty or must name the
// family of oldHash; a zero next.IssuedAt means now. A grace of zero or
// less turns the grace window off.
func (s *Store) Rotate(ctx context.Context, oldHash string, next auth.RefreshToken, now time.Time, grace time.Duration) (auth.Family, error) {
	if err := checkToken(next, next.FamilyID); err != nil {
		return auth.Family{}, fmt.Errorf("refresh store: rotate: next token: %w", err)
	}
	if !next.RotatedAt.IsZero() {
		return auth.Family{}, errors.New("refresh store: rotate: next token is already rotated")
	}
	if now.IsZero() {
		return auth.Family{}, errors.New("refresh store: rotate: zero time")
	}
	now = database.Timestamp(now, now)

	tx, err := s.db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return auth.Family{}, storeError("rotate", err)
	}
	defer func() { _ = tx.Rollback() }()

	res, err := tx.ExecContext(ctx,
		`UPDATE refresh_tokens SET rotated_at = $2 WHERE hash = $1 AND rotated_at IS NULL`, oldHash, now)
	if err != nil {
		return auth.Family{}, storeError("rotate", err)
	}
	changed, err := res.RowsAffected()
	if err != nil {
		return auth.Family{}, storeError("rotate", err)
	}
	cur, err := loadToken(ctx, tx, oldHash)
	if err != nil {
		return auth.Family{}, storeError("rotate", err)
	}
	f := cur.family

	if changed == 1 {
		// This call won the token. Returning before Commit rolls the
		// mark back: a token that is refused stays as it was.
		switch {
		case !f.RevokedAt.IsZero():
			return auth.Family{}, fmt.Errorf("refresh store: rotate: %w", auth.ErrTokenRevoked)
		case !now.Before(f.ExpiresAt):
			return auth.Family{}, fmt.Errorf("refresh store: rotate: family: %w", auth.ErrTokenExpired)
		case !now.Before(cur.idleExpiresAt):
			return auth.Family{}, fmt.Errorf("refresh store: rotate: idle timeout: %w", auth.ErrTokenExpired)
		}
		if next.FamilyID != "" && next.FamilyID != f.ID {
			return auth.Family{}, errors.New("refresh store: rotate: next token names another family")
		}
		if err := insertToken(ctx, tx, next, f.ID, now); err != nil {
			return auth.Family{}, storeError("rotate", err)
		}
		if err := tx.Commit(); err != nil {
			return auth.Family{}, storeError("rotate", err)
		}
		return f, nil
	}

	if cur.rotatedAt.IsZero() {
		// Not there when the UPDATE ran, current now: on PostgreSQL a
		// token whose insert committed between the two statements. It
		// was unknown at the moment this call decided.
		return auth.Family{}, fmt.Errorf("refresh store: rotate: %w", auth.ErrTokenNotFound)
	}
	switch {
	case !f.RevokedAt.IsZero():
		return auth.Family{}, fmt.Errorf("refresh store: rotate: %w", auth.ErrTokenRevoked)
	case !now.Before(f.ExpiresAt):
		return auth.Family{}, fmt.Errorf("refresh store: rotate: family: %w", auth.ErrTokenExpired)
	case grace > 0 && now.Sub(cur.rotatedAt) < grace:
		// A parallel refresh by the same client, not theft; a clock
		// behind the winner's (negative difference) counts as within.
		return auth.Family{}, fmt.Errorf("refresh store: rotate: %w", auth.ErrTokenJustRotated)
	}
	// Reuse of a rotated token (its idle window does not matter: a thief
	// presenting an old token is a signal either way). Revoke the family
	// and commit that before reporting the reuse.
	if _, err := tx.ExecContext(ctx,
		`UPDATE refresh_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, f.ID, now); err != nil {
		return auth.Family{}, storeError("rotate: revoke reused family", err)
	}
	if err := tx.Commit(); err != nil {
		return auth.Family{}, storeError("rotate: revoke reused family", err)
	}
	return auth.Family{}, fmt.Errorf("refresh store: rotate: %w", auth.ErrTokenReused)
}

// Lookup implements auth.RefreshStore.Lookup.
func (s *Store) Lookup(ctx context.Context, hash string) (auth.RefreshToken, auth.Family, error) {
	st, err := loadToken(ctx, s.db.SQL(), hash)
	if err != nil {
		return auth.RefreshToken{}, auth.Family{}, storeError("lookup", err)
	}
	tok := auth.RefreshToken{Hash: hash, FamilyID: st.family.ID, IssuedAt: st.issuedAt, IdleExpiresAt: st.idleExpiresAt, RotatedAt: st.rotatedAt}
	return tok, st.family, nil
}

// RevokeUserFamilies implements auth.RefreshStore.RevokeUserFamilies,
// through the user_id index.
func (s *Store) RevokeUserFamilies(ctx context.Context, userID string, belowVersion int64, now time.Time) (int64, error) {
	if now.IsZero() {
		return 0, errors.New("refresh store: revoke user families: zero time")
	}
	res, err := s.db.SQL().ExecContext(ctx,
		`UPDATE refresh_families SET revoked_at = $3
		 WHERE user_id = $1 AND session_version < $2 AND revoked_at IS NULL`,
		userID, belowVersion, database.Timestamp(now, now))
	if err != nil {
		return 0, storeError("revoke user families", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, storeError("revoke user families", err)
	}
	return n, nil
}

// RevokeFamily implements auth.RefreshStore.RevokeFamily. A family that is
// already revoked keeps its first revocation time.
func (s *Store) RevokeFamily(ctx context.Context, hash string, now time.Time) error {
	if now.IsZero() {
		return errors.New("refresh store: revoke family: zero time")
	}
	// Matched rows count, changed or not, on both databases: 0 means no
	// token with this hash.
	res, err := s.db.SQL().ExecContext(ctx,
		`UPDATE refresh_families SET revoked_at = COALESCE(revoked_at, $2)
		 WHERE id = (SELECT family_id FROM refresh_tokens WHERE hash = $1)`,
		hash, database.Timestamp(now, now))
	if err != nil {
		return storeError("revoke family", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return storeError("revoke family", err)
	}
	if n == 0 {
		return fmt.Errorf("refresh store: revoke family: %w", auth.ErrTokenNotFound)
	}
	return nil
}

// PurgeExpired implements auth.RefreshStore.PurgeExpired. It deletes in
// batches, each its own statement, so it returns what it deleted so far
// along with an error that stops it.
func (s *Store) PurgeExpired(ctx context.Context, now time.Time, retention time.Duration) (int64, error) {
	if now.IsZero() {
		return 0, errors.New("refresh store: purge: zero time")
	}
	expiredBefore := database.Timestamp(now, now)
	revokedBefore := database.Timestamp(now.Add(-retention), now)
	var total int64
	for {
		// Tokens go with their family through ON DELETE CASCADE.
		res, err := s.db.SQL().ExecContext(ctx,
			`DELETE FROM refresh_families WHERE id IN (
			     SELECT id FROM refresh_families
			     WHERE expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $2)
			     LIMIT $3)`,
			expiredBefore, revokedBefore, purgeBatch)
		if err != nil {
			return total, storeError("purge", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, storeError("purge", err)
		}
		total += n
		if n < int64(purgeBatch) {
			return total, nil
		}
	}
}

// ActiveTokens implements auth.RefreshStore.ActiveTokens; an unknown family
// has none.
func (s *Store) ActiveTokens(ctx context.Context, familyID string) (int, error) {
	var n int
	err := s.db.SQL().QueryRowContext(ctx,
		`SELECT count(*) FROM refresh_tokens WHERE family_id = $1 AND rotated_at IS NULL`, familyID).Scan(&n)
	if err != nil {
		return 0, storeError("active tokens", err)
	}
	return n, nil
}

// Ping reports ErrUnavailable unless the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.Ping(ctx); err != nil {
		return fmt.Errorf("refresh store: ping: %w: %w", auth.ErrUnavailable, err)
	}
	return nil
}

// tokenState is a stored token joined with its family.
type tokenState struct {
	issuedAt      time.Time
	idleExpiresAt time.Time
	rotatedAt     time.Time // zero while current
	family        auth.Family
}

// querier is a *sql.Tx or a *sql.DB.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func loadToken(ctx context.Context, q querier, hash string) (tokenState, error) {
	var (
		st        tokenState
		roles     string
		rotatedAt sql.NullTime
		revokedAt sql.NullTime
	)
	err := q.QueryRowContext(ctx,
		`SELECT t.issued_at, t.idle_expires_at, t.rotated_at,
		        f.id, f.user_id, f.client_id, f.roles, f.session_version, f.created_at, f.expires_at, f.revoked_at
		 FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
		 WHERE t.hash = $1`, hash).
		Scan(&st.issuedAt, &st.idleExpiresAt, &rotatedAt,
			&st.family.ID, &st.family.UserID, &st.family.ClientID, &roles, &st.family.SessionVersion, &st.family.CreatedAt, &st.family.ExpiresAt, &revokedAt)
	if err != nil {
		return tokenState{}, err
	}
	if st.family.Roles, err = database.DecodeStrings(roles); err != nil {
		return tokenState{}, fmt.Errorf("roles of family %s: %w", st.family.ID, err)
	}
	st.issuedAt = st.issuedAt.UTC()
	st.idleExpiresAt = st.idleExpiresAt.UTC()
	st.rotatedAt = database.TimeOrZero(rotatedAt)
	st.family.CreatedAt = st.family.CreatedAt.UTC()
	st.family.ExpiresAt = st.family.ExpiresAt.UTC()
	st.family.RevokedAt = database.TimeOrZero(revokedAt)
	return st, nil
}

func insertToken(ctx context.Context, tx *sql.Tx, t auth.RefreshToken, familyID string, now time.Time) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO refresh_tokens (hash, family_id, issued_at, idle_expires_at, rotated_at)
		 VALUES ($1, $2, $3, $4, NULL)`,
		t.Hash, familyID, database.Timestamp(t.IssuedAt, now), database.Timestamp(t.IdleExpiresAt, now))
	return err
}

func checkFamily(f auth.Family) error {
	switch {
	case f.ID == "":
		return errors.New("empty family id")
	case f.UserID == "":
		return errors.New("empty user id")
	case f.ExpiresAt.IsZero():
		return errors.New("zero expiry")
	}
	return nil
}

// checkToken validates a token about to be inserted into family familyID
// (empty if not known yet).
func checkToken(t auth.RefreshToken, familyID string) error {
	switch {
	case t.Hash == "":
		return errors.New("empty hash")
	case t.IdleExpiresAt.IsZero():
		return errors.New("zero idle expiry")
	case t.FamilyID != "" && t.FamilyID != familyID:
		return errors.New("token names another family")
	}
	return nil
}

// storeError maps a driver error to the auth sentinels. The driver error
// stays in the chain for errors.As and logs; callers show clients only what
// the sentinel says.
func storeError(op string, err error) error {
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("refresh store: %s: %w", op, auth.ErrTokenNotFound)
	case database.IsUnavailable(err):
		return fmt.Errorf("refresh store: %s: %w: %w", op, auth.ErrUnavailable, err)
	case database.IsUniqueViolation(err):
		// Hashes come from ≥128 random bits and ids are fresh UUIDv7s: a
		// clash is a caller bug, not something a client can act on.
		return fmt.Errorf("refresh store: %s: family or token already stored: %w", op, err)
	default:
		return fmt.Errorf("refresh store: %s: %w", op, err)
	}
}
