package auth

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Wrap them with %w; errorStatus maps them to gRPC codes.
var (
	ErrBadCredentials   = errors.New("invalid email or password")
	ErrInvalidToken     = errors.New("invalid token")
	ErrTokenNotFound    = errors.New("refresh token not found")
	ErrTokenExpired     = errors.New("refresh token expired")
	ErrTokenRevoked     = errors.New("refresh token revoked")
	ErrTokenReused      = errors.New("refresh token reused; family revoked")
	ErrTokenJustRotated = errors.New("refresh token was just rotated by a concurrent request")
	ErrUnavailable      = errors.New("dependency unavailable")
	ErrUserNotFound     = errors.New("user not found")
	ErrSessionEnded     = errors.New("session ended: the user changed credentials or was logged out everywhere")
)

// OverloadedError: the User service has no password-hashing capacity
// left for now; retry after RetryAfter.
type OverloadedError struct{ RetryAfter time.Duration }

func (e *OverloadedError) Error() string {
	return fmt.Sprintf("user service busy hashing passwords; retry in %s", e.RetryAfter)
}

// Account is a user as the User service reports it now: the subject,
// roles and session version of the tokens the Auth service issues.
type Account struct {
	ID             string
	Roles          []string
	SessionVersion int64
}

// Family is one login session: every refresh token minted from one Login
// belongs to it, and revoking it ends them all.
type Family struct {
	ID     string // UUIDv7
	UserID string
	// ClientID is the client that logged in; every access token of the
	// session carries it as "client_id".
	ClientID string
	// Roles are the roles at login, kept for the record; a refresh issues
	// the roles the user holds then, from the User service.
	Roles []string
	// SessionVersion is the user's session version at login. When the
	// User service reports another, the session has ended.
	SessionVersion int64
	CreatedAt      time.Time
	ExpiresAt      time.Time // absolute lifetime (JWT_REFRESH_EXPIRY)
	RevokedAt      time.Time // zero while active
}

// RefreshToken is one stored refresh token. Only the SHA-256 of the opaque
// token is stored, so a database leak yields nothing usable.
type RefreshToken struct {
	Hash          string // hex SHA-256 of the opaque token
	FamilyID      string
	IssuedAt      time.Time
	IdleExpiresAt time.Time // IssuedAt + idle timeout
	RotatedAt     time.Time // zero while it is the family's current token
}

// RefreshStore persists families and tokens. Implementations must make
// Rotate atomic: of any number of concurrent Rotate calls for one token,
// exactly one succeeds.
type RefreshStore interface {
	// CreateFamily stores a new family with its first token.
	CreateFamily(ctx context.Context, f Family, first RefreshToken) error
	// Rotate marks the token with oldHash as rotated at now and stores
	// next in the same family, atomically, returning the family.
	// Errors (wrapped): ErrTokenNotFound for an unknown hash;
	// ErrTokenRevoked if the family is revoked; ErrTokenExpired if the
	// family or the token's idle window has expired; ErrTokenReused if the
	// token was already rotated, in which case the family is revoked in
	// the same transaction — unless it was rotated less than grace ago,
	// then ErrTokenJustRotated and nothing changes; ErrUnavailable when the
	// database cannot be reached.
	Rotate(ctx context.Context, oldHash string, next RefreshToken, now time.Time, grace time.Duration) (Family, error)
	// Lookup returns, without changing anything, the token with hash and
	// its family, or ErrTokenNotFound.
	Lookup(ctx context.Context, hash string) (RefreshToken, Family, error)
	// RevokeFamily revokes the family of the token with hash. Revoking a
	// revoked family succeeds; an unknown hash gives ErrTokenNotFound.
	RevokeFamily(ctx context.Context, hash string, now time.Time) error
	// RevokeUserFamilies revokes every unrevoked family of userID whose
	// SessionVersion is below belowVersion, and returns how many.
	RevokeUserFamilies(ctx context.Context, userID string, belowVersion int64, now time.Time) (int64, error)
	// PurgeExpired deletes families (and their tokens) whose absolute
	// lifetime ended before now, or that were revoked before
	// now - retention, and returns how many families it deleted.
	PurgeExpired(ctx context.Context, now time.Time, retention time.Duration) (int64, error)
	// ActiveTokens counts a family's tokens that are not rotated (at most
	// one, by construction); tests and invariants use it.
	ActiveTokens(ctx context.Context, familyID string) (int, error)
	Ping(ctx context.Context) error
}
