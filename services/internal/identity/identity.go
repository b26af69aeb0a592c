// Package identity is the vocabulary the two services share about who is
// calling: the role names, the Auth service's own principal, and the one
// canonical form of an email address. It is declared once, here, so the
// User service (which stores users) and the Auth service (which logs them in
// and mints its own service tokens) cannot drift apart. It imports neither
// service and holds no policy.
package identity

import (
	"strings"

	"golang.org/x/text/unicode/norm"
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
