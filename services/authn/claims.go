package authn

import (
	"slices"
	"time"
)

// Claims are the verified contents of an access token. A *Claims only exists
// after every rule of the Verifier passed, so handlers may trust it.
type Claims struct {
	Subject string   // sub: the user (or service) id; never empty
	Roles   []string // roles: the token's "roles" claim, e.g. "admin", "service"
	// ClientID is RFC 9068's "client_id": the client the token was issued
	// to ("gatehouse" unless the login named another). Empty in tokens
	// from before it was added.
	ClientID  string
	Issuer    string    // iss: the Verifier's issuer (or one of WithAcceptedIssuers)
	Audience  []string  // aud: contains the Verifier's audience
	ExpiresAt time.Time // exp: always set
	IssuedAt  time.Time // iat: zero if the token has none
	NotBefore time.Time // nbf: zero if the token has none
	ID        string    // jti: empty if the token has none
	KeyID     string    // kid of the key that verified the signature (may be empty in HS256 mode)
	// SessionVersion is the "session_version" claim: the user's session
	// version when the token was issued (0 when absent). The User service
	// refuses the token once the user's version has moved on.
	SessionVersion int64
}

// HasRole reports whether the token carries role. It is nil-safe so a handler
// can write `c.HasRole("admin")` on an unauthenticated (public) call without
// checking for nil first.
func (c *Claims) HasRole(role string) bool {
	return c != nil && slices.Contains(c.Roles, role)
}
