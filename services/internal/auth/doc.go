// Package auth is the token domain: login against the User service, JWT
// access tokens signed with keys from files, rotating refresh tokens with
// reuse detection (RFC 9700), validation and revocation, and the gRPC
// handlers of auth.v1.AuthService. Refresh-token storage lives in the store
// subpackage; this package defines what it needs as an interface.
package auth
