package identity

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authz"
)

// Roles. RoleAdmin is the one role a user can be given; RoleService belongs
// only to the Auth service's own tokens (ServiceSubject) and is never
// assignable through the API, because it unlocks VerifyPassword, a password
// oracle.
const (
	RoleAdmin   = "admin"
	RoleService = "service"
)

// ServiceSubject is the subject of the Auth service's own tokens. It is not
// a UUID, so it can never name a user.
const ServiceSubject = "service:gatehouse-auth"

// ErrorDomain is the google.rpc.ErrorInfo domain of the services' own
// Unauthenticated answers: about the request's credentials (a password, a
// refresh token, the token ValidateToken checks), never the caller's bearer
// token. The authn interceptor's reasons (domain authn.ErrorDomain) are
// about the caller's own token; keeping the two apart is what lets the
// Auth service tell "the User service refused my service token" from "the
// user's password is wrong", in any mix of versions during a rollout.
const ErrorDomain = "gatehouse.dev"

// Reasons of the services' own Unauthenticated answers (domain
// ErrorDomain): with the interceptor's, every Unauthenticated says what the
// client should do. ValidateToken also answers TOKEN_EXPIRED and
// TOKEN_INVALID in this domain, about the token it was given.
const (
	// ReasonCredentialsInvalid: wrong email or password (one reason for
	// both, so it tells an attacker nothing). Ask the user again.
	ReasonCredentialsInvalid = "CREDENTIALS_INVALID"
	// ReasonRefreshTokenInvalid: the refresh token is unknown, expired,
	// revoked or reused, or its session ended. Log in again.
	ReasonRefreshTokenInvalid = "REFRESH_TOKEN_INVALID"
)

// DefaultIssuer is JWT_ISSUER when unset, in both services: the Auth
// service's HTTP port on a developer's machine (https when the services
// serve TLS). Any deployment sets its own, the URL clients reach the Auth
// service's HTTP port at.
func DefaultIssuer(tls bool) string {
	if tls {
		return "https://localhost:8082"
	}
	return "http://localhost:8082"
}

// DefaultClientID is the client of a Login that names none (CLIENT_IDS'
// default); it is the "client_id" claim of such tokens (RFC 9068).
const DefaultClientID = "gatehouse"

// ValidClientID reports whether id may name a client: 1 to 64 characters
// of [A-Za-z0-9._:-], so it is safe in a log line, a metric label or a
// header, and cannot be confused with a list.
func ValidClientID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:-", r)
		if !ok {
			return false
		}
	}
	return true
}

// IsUserID reports whether id has the form of a user ID: a UUID in its
// canonical 36-character text (uuid.Parse alone also takes the braced,
// URN and 32-digit forms, which would name the same user another way).
func IsUserID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

// AssignableRoles are the roles an admin may give a user.
func AssignableRoles() []string { return []string{RoleAdmin} }

// CanonicalEmail is the form under which an email is stored, compared and
// rate-limited: surrounding white space removed, Unicode NFC (so "ü"
// written as u + combining diaeresis is the same as the precomposed one),
// lower-cased. Validation (is it an address at all, in one script, without
// compatibility forms) is the User service's; this is only the rule that
// makes "Ada@Example.com " and "ada@example.com" the same account.
func CanonicalEmail(email string) string {
	return strings.ToLower(norm.NFC.String(strings.TrimSpace(email)))
}

// Caller is an account as a service knows it at this moment, for Resolve.
type Caller struct {
	ID             string
	Roles          []string
	SessionVersion int64
	// Record is what the lookup read, handed on as authz.Principal.Account.
	Record any
}

// Resolve is the rule both services judge a token by, whichever way each
// learns about the account (the User service from its store, the Auth
// service by asking the User service):
//
//   - the Auth service's own token (ServiceSubject) is the service
//     principal if it carries RoleService, and nobody otherwise;
//   - any other token stands for the account lookup returns now: it must
//     exist (lookup answers an error wrapping authz.ErrSessionEnded when it
//     does not, authz.ErrUnavailable when it cannot tell), its session
//     version must be the token's, and its roles are the account's, never
//     the token's, without RoleService, which no human account acts as.
func Resolve(ctx context.Context, c *authn.Claims, lookup func(ctx context.Context, id string) (Caller, error)) (authz.Principal, error) {
	if c.Subject == ServiceSubject {
		return authz.Principal{ID: c.Subject, Service: c.HasRole(RoleService)}, nil
	}
	acct, err := lookup(ctx, c.Subject)
	if err != nil {
		return authz.Principal{}, err
	}
	if c.SessionVersion != acct.SessionVersion {
		return authz.Principal{}, fmt.Errorf("%w: token of session version %d, the user's is %d", authz.ErrSessionEnded, c.SessionVersion, acct.SessionVersion)
	}
	roles := acct.Roles
	if slices.Contains(roles, RoleService) {
		roles = slices.DeleteFunc(slices.Clone(roles), func(r string) bool { return r == RoleService })
	}
	return authz.Principal{ID: acct.ID, Roles: roles, Account: acct.Record}, nil
}
