// Package identity is what the two services share about who is calling:
// the role names, the Auth service's own principal, the one canonical form
// of an email address, and the rule a token is judged by (Resolve). It is
// declared once, here, so the User service (which stores users) and the
// Auth service (which logs them in and mints its own service tokens)
// cannot drift apart. It imports neither service.
package identity
