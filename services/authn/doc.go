// Package authn verifies Gatehouse access tokens. It is the one verifier
// of the project: both Gatehouse services use it, and any Go service that
// wants to trust Gatehouse tokens imports it
// (github.com/gatehouse-dev/gatehouse/services/authn) and verifies locally,
// with no call to the Auth service per request.
//
// It has four parts:
//
//   - Key sets ([KeySet]) that answer "which public key has this kid?":
//     [NewIssuerKeySet] (configured from the issuer URL alone: discovery,
//     then the JWKS it names, refreshed in the background and on an unknown
//     kid), [NewJWKSKeySet] (a JWKS URL), [NewDirKeySet] (PEM files mounted
//     from a Kubernetes Secret, reloaded without a restart),
//     [NewSecretKeySet] (HS256 development mode) and [NewStaticKeySet]
//     (fixed keys).
//   - A [Verifier] that applies the token rules: size limit before
//     parsing, algorithm pinned to the key, no "none", typ at+jwt (RFC
//     9068), well-formed kid, required exp/iss/aud/sub, nbf and iat with
//     leeway.
//   - A fail-closed gRPC [Interceptor] (unary and streaming) that demands a
//     bearer token on every method except explicit allowlists, and an
//     net/http [Middleware]; both put the verified [Claims] in the request
//     context ([ClaimsFromContext]).
//   - Refusals a client can act on: google.rpc.ErrorInfo reasons
//     (TOKEN_MISSING, TOKEN_INVALID, TOKEN_EXPIRED, KEYS_UNAVAILABLE) in
//     gRPC statuses, and RFC 6750 WWW-Authenticate errors over HTTP.
//
// It is verification only: it holds no private key and knows nothing
// about how tokens are issued. Package authntest mints test tokens and
// walks a server's every method to check that each is protected.
//
// Nothing in this package logs or returns token text: a token is a bearer
// credential, and error strings end up in client-visible statuses and logs.
package authn
