// Package user is the user domain: accounts, their roles and passwords, and
// the gRPC handlers of user.v1.UserService. Storage and password hashing live
// in the store and password subpackages; this package defines what it needs
// from them as small interfaces.
package user

import (
	"context"
	"errors"
	"time"
)

// Roles a user may hold. Plain users hold none.
const (
	RoleAdmin   = "admin"
	RoleService = "service"
)

// User is an account as the domain sees it.
type User struct {
	ID           string // UUIDv7
	Email        string // lower-cased
	DisplayName  string
	Roles        []string
	PasswordHash string // argon2id PHC string; never leaves the service
	CreateTime   time.Time
	UpdateTime   time.Time
}

// HasRole reports whether u holds role.
func (u User) HasRole(role string) bool {
	for _, r := range u.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Sentinel errors. Wrap them with %w; errorStatus maps them to gRPC codes.
var (
	ErrNotFound         = errors.New("user not found")
	ErrEmailTaken       = errors.New("email already registered")
	ErrInvalidPageToken = errors.New("invalid page token")
	ErrUnavailable      = errors.New("storage unavailable")
	ErrBadCredentials   = errors.New("invalid email or password")
	ErrPermissionDenied = errors.New("permission denied")
	ErrUnauthenticated  = errors.New("authentication required")
	ErrOverloaded       = errors.New("too many concurrent password operations")
)

// Store persists users. Implementations return ErrNotFound, ErrEmailTaken
// and ErrUnavailable (wrapped) so callers never see driver errors.
type Store interface {
	Create(ctx context.Context, u User) error
	Get(ctx context.Context, id string) (User, error)
	GetByEmail(ctx context.Context, email string) (User, error)
	// List returns up to limit users with id > afterID, ordered by id.
	List(ctx context.Context, afterID string, limit int) ([]User, error)
	// Update replaces every mutable field of the user with u.ID and sets
	// its update time; ErrNotFound if there is none.
	Update(ctx context.Context, u User) error
	Delete(ctx context.Context, id string) error
	Ping(ctx context.Context) error
}

// PasswordHasher hashes and checks passwords.
type PasswordHasher interface {
	Hash(ctx context.Context, password string) (string, error)
	// Verify reports whether password matches hash. With an empty hash it
	// spends the same time as a real check and returns false, so unknown
	// users cannot be told apart by timing.
	Verify(ctx context.Context, password, hash string) (bool, error)
}
