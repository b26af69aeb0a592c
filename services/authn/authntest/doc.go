// Package authntest helps other packages' tests authenticate: it mints
// access tokens that authn.Verifier accepts (or, on request, tokens that
// break one rule), and checks that a gRPC server protects every method.
//
// It is for tests only; nothing in production code may import it.
package authntest
