package authn

import "errors"

// Sentinel errors. Verify's errors wrap them so callers decide with
// errors.Is, never by matching strings.
var (
	// ErrInvalidToken is wrapped by every error that means "this token is not
	// acceptable": malformed, badly signed, wrong audience, expired, unknown
	// key. The interceptor maps it to codes.Unauthenticated.
	ErrInvalidToken = errors.New("invalid token")

	// ErrExpired additionally marks a token whose exp has passed (beyond the
	// leeway), so a client can be told to refresh rather than to log in again.
	ErrExpired = errors.New("token expired")

	// ErrUnknownKey additionally marks a token whose kid names no key in the
	// key set, even after the key set had its chance to refresh.
	ErrUnknownKey = errors.New("unknown signing key")

	// ErrKeysUnavailable means the key set has not loaded any key yet (a JWKS
	// endpoint not reached since start). It does NOT wrap ErrInvalidToken: the
	// token may well be good, so the interceptor answers codes.Unavailable and
	// the client retries instead of discarding its credentials.
	ErrKeysUnavailable = errors.New("verification keys unavailable")

	// ErrNoKeyFiles means a key directory held no key at all, so a service
	// can tell its operator how to create one.
	ErrNoKeyFiles = errors.New("no key files found")
)

// tokenError is the error Verify returns for a rejected token. Its message is
// a fixed reason chosen by this package, never text taken from the token or
// from the JWT library, so it is safe to show a client and to log.
type tokenError struct {
	reason string
	kinds  []error
}

func (e *tokenError) Error() string   { return "invalid token: " + e.reason }
func (e *tokenError) Unwrap() []error { return e.kinds }

// invalid builds a tokenError that wraps ErrInvalidToken and, optionally,
// more specific sentinels.
func invalid(reason string, more ...error) error {
	return &tokenError{reason: reason, kinds: append([]error{ErrInvalidToken}, more...)}
}
