package user

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/internal/identity"
)

// RoleAdmin is the one role a user can hold; plain users hold none. The
// name, and the Auth service's own role, are declared in package identity.
const RoleAdmin = identity.RoleAdmin

// User is an account as the domain sees it.
type User struct {
	ID           string // UUIDv7
	Email        string // canonical: identity.CanonicalEmail
	DisplayName  string
	Roles        []string
	PasswordHash string // argon2id PHC string; never leaves the service
	CreateTime   time.Time
	UpdateTime   time.Time
	// Version moves on with every change of the user: its etag (AIP-154)
	// and the condition of writes that name one.
	Version int64
	// SessionVersion moves on whenever the user's sessions end (password
	// changed or reset, email changed, EndSessions). Access tokens and
	// refresh families carry the version they were issued at; an older one
	// is refused.
	SessionVersion int64
}

// Change is a partial update of a user: only the fields set are written,
// in one atomic statement, so concurrent changes of different fields never
// undo each other.
type Change struct {
	Email        *string
	DisplayName  *string
	Roles        *[]string
	PasswordHash *string
	// EndSessions moves SessionVersion on with the change.
	EndSessions bool
	// IfVersion, when not zero, makes the change conditional: ErrStale if
	// the user's Version is no longer this.
	IfVersion  int64
	UpdateTime time.Time // zero means now
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
	ErrOverloaded       = errors.New("too many concurrent password operations")
	ErrStale            = errors.New("user changed since the etag was read")
	ErrLastAdmin        = errors.New("the last admin cannot be removed")
	ErrWrongPassword    = errors.New("current password does not match")
)

// OverloadedError is ErrOverloaded with the delay after which a retry can
// expect room: the time the password hashing queue needs to drain.
type OverloadedError struct{ RetryAfter time.Duration }

func (e *OverloadedError) Error() string {
	return fmt.Sprintf("%s; room again in about %s", ErrOverloaded, e.RetryAfter.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrOverloaded) hold.
func (e *OverloadedError) Is(target error) bool { return target == ErrOverloaded }

// Store persists users. Implementations return ErrNotFound, ErrEmailTaken
// and ErrUnavailable (wrapped) so callers never see driver errors.
type Store interface {
	Create(ctx context.Context, u User) error
	Get(ctx context.Context, id string) (User, error)
	GetByEmail(ctx context.Context, email string) (User, error)
	// List returns up to limit users with id > afterID, ordered by id.
	List(ctx context.Context, afterID string, limit int) ([]User, error)
	// Update applies ch to the user with id atomically, moves its Version
	// on, and returns the user as written. ErrNotFound if there is none,
	// ErrStale if ch.IfVersion is set and no longer current, ErrEmailTaken,
	// and ErrLastAdmin if it would take the admin role from the last
	// admin.
	Update(ctx context.Context, id string, ch Change) (User, error)
	// Delete removes the user with id; ifVersion as Change.IfVersion.
	// ErrNotFound, ErrStale, or ErrLastAdmin for the last admin.
	Delete(ctx context.Context, id string, ifVersion int64) error
	// EndSessions moves the user's SessionVersion on and returns the new
	// one; ErrNotFound if there is no such user.
	EndSessions(ctx context.Context, id string) (int64, error)
	Ping(ctx context.Context) error
}

// PasswordHasher hashes and checks passwords.
type PasswordHasher interface {
	Hash(ctx context.Context, password string) (string, error)
	// Verify reports whether password matches hash. With an empty hash it
	// spends the same time as a real check and returns false, so unknown
	// users cannot be told apart by timing.
	Verify(ctx context.Context, password, hash string) (bool, error)
	// Admit returns, without waiting, the *OverloadedError a computation
	// asked for now would get, or nil: a check that lets a flood be
	// refused before the work that comes ahead of the hash (limits, a
	// database read). The computation itself is still checked.
	Admit() error
}
