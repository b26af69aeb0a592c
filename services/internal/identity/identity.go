// Package identity is what the two services share about who is calling:
// the role names, the Auth service's own principal, the one canonical form
// of an email address, and the rule a token is judged by (Resolve). It is
// declared once, here, so the User service (which stores users) and the
// Auth service (which logs them in and mints its own service tokens)
// cannot drift apart. It imports neither service.
package identity

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authn"
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
