// Package authn authenticates gRPC callers by their JWT access tokens.
//
// It has three parts:
//
//   - Key sets ([KeySet]) that answer "which public key has this kid?":
//     [NewSecretKeySet] (HS256 simple mode), [NewDirKeySet] (PEM files mounted
//     from a Kubernetes Secret, reloaded without a restart), [NewJWKSKeySet]
//     (the Auth service's published JWKS, refreshed in the background and on
//     an unknown kid) and [NewStaticKeySet] (fixed keys, for tests and
//     in-process use).
//   - A [Verifier] that applies the token rules of DESIGN.md §3: size limit
//     before parsing, algorithm pinned to the key, no "none", typ at+jwt,
//     well-formed kid, required exp/iss/aud/sub, nbf and iat with leeway.
//   - A fail-closed gRPC [Interceptor] (unary and streaming) that demands a
//     bearer token on every method except an explicit allowlist and puts the
//     verified [Claims] in the request context.
//
// It is a platform package: it knows nothing about users or how tokens are
// issued, so both services can use it and it imports no domain package.
//
// Nothing in this package logs or returns token text: a token is a bearer
// credential, and error strings end up in client-visible statuses and logs.
package authn
