package authntest

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/metadata"

	"github.com/gatehouse-dev/gatehouse/services/authn"
)

// Defaults used by NewSigner.
const (
	DefaultIssuer   = "https://auth.gatehouse.test"
	DefaultAudience = "gatehouse"
	DefaultLifetime = 15 * time.Minute
)

// Signer mints test access tokens with one key.
type Signer struct {
	Issuer   string
	Audience string
	key      authn.Key // public half, for KeySet
	private  any       // what jwt signs with
	method   jwt.SigningMethod
}

// NewSigner returns a Signer with a fresh Ed25519 key (kid "test-ed25519"),
// issuing for DefaultIssuer and DefaultAudience.
func NewSigner(t testing.TB) *Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("authntest: generating Ed25519 key: %v", err)
	}
	return NewSignerWithKey(t, "test-ed25519", priv)
}

// NewSignerWithKey returns a Signer for a given key: ed25519.PrivateKey,
// *ecdsa.PrivateKey (P-256), *rsa.PrivateKey (≥ 2048 bits) or an HS256
// secret ([]byte, ≥ 32 bytes). kid may be "" only for HS256.
func NewSignerWithKey(t testing.TB, kid string, private any) *Signer {
	t.Helper()
	key, err := authn.NewKey(kid, private)
	if err != nil {
		t.Fatalf("authntest: %v", err)
	}
	var method jwt.SigningMethod
	switch private.(type) {
	case ed25519.PrivateKey:
		method = jwt.SigningMethodEdDSA
	case *ecdsa.PrivateKey:
		method = jwt.SigningMethodES256
	case *rsa.PrivateKey:
		method = jwt.SigningMethodRS256
	case []byte:
		method = jwt.SigningMethodHS256
	default:
		t.Fatalf("authntest: %T is not a private key", private)
	}
	return &Signer{Issuer: DefaultIssuer, Audience: DefaultAudience, key: key, private: private, method: method}
}

// Key returns the public key (authn.Key) the Signer's tokens verify with.
func (s *Signer) Key() authn.Key { return s.key }

// KeySet returns a key set holding only this Signer's key: a
// *authn.StaticKeySet, or a *authn.SecretKeySet for HS256.
func (s *Signer) KeySet(t testing.TB) authn.KeySet {
	t.Helper()
	if s.key.Algorithm == authn.AlgHS256 {
		ks, err := authn.NewSecretKeySet(s.private.([]byte))
		if err != nil {
			t.Fatalf("authntest: %v", err)
		}
		return ks
	}
	ks, err := authn.NewStaticKeySet(s.key)
	if err != nil {
		t.Fatalf("authntest: %v", err)
	}
	return ks
}

// Verifier returns a Verifier that trusts exactly this Signer.
func (s *Signer) Verifier(t testing.TB, opts ...authn.VerifierOption) *authn.Verifier {
	t.Helper()
	v, err := authn.NewVerifier(s.KeySet(t), s.Issuer, s.Audience, opts...)
	if err != nil {
		t.Fatalf("authntest: %v", err)
	}
	return v
}

// TokenOption changes one aspect of a minted token.
type TokenOption func(header, claims map[string]any)

// Roles sets the "roles" claim.
func Roles(roles ...string) TokenOption {
	return func(_, c map[string]any) { c["roles"] = roles }
}

// ExpiresIn sets exp relative to now; negative values mint an expired token.
func ExpiresIn(d time.Duration) TokenOption {
	return func(_, c map[string]any) { c["exp"] = time.Now().Add(d).Unix() }
}

// Audience replaces the "aud" claim.
func Audience(aud ...string) TokenOption {
	return func(_, c map[string]any) { c["aud"] = aud }
}

// Issuer replaces the "iss" claim.
func Issuer(iss string) TokenOption {
	return func(_, c map[string]any) { c["iss"] = iss }
}

// NotBefore sets the "nbf" claim.
func NotBefore(t time.Time) TokenOption {
	return func(_, c map[string]any) { c["nbf"] = t.Unix() }
}

// IssuedAt sets the "iat" claim.
func IssuedAt(t time.Time) TokenOption {
	return func(_, c map[string]any) { c["iat"] = t.Unix() }
}

// Claim sets any claim; a nil value removes it (e.g. Claim("exp", nil)).
func Claim(name string, value any) TokenOption {
	return func(_, c map[string]any) { setOrDelete(c, name, value) }
}

// Header sets any header field; a nil value removes it (e.g.
// Header("kid", nil)). The signature is still made with the Signer's key and
// algorithm, whatever "alg" says, which is how tests forge mismatches.
func Header(name string, value any) TokenOption {
	return func(h, _ map[string]any) { setOrDelete(h, name, value) }
}

func setOrDelete(m map[string]any, k string, v any) {
	if v == nil {
		delete(m, k)
		return
	}
	m[k] = v
}

// Token mints a token for subject that the Signer's Verifier accepts, unless
// opts break a rule. Defaults: typ at+jwt, the Signer's kid, iss and aud,
// iat and nbf now, exp in DefaultLifetime, a random jti, no roles.
func (s *Signer) Token(t testing.TB, subject string, opts ...TokenOption) string {
	t.Helper()
	now := time.Now()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	header := map[string]any{"alg": s.method.Alg(), "typ": "at+jwt"}
	if s.key.ID != "" {
		header["kid"] = s.key.ID
	}
	claims := map[string]any{
		"iss": s.Issuer,
		"aud": []string{s.Audience},
		"sub": subject,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(DefaultLifetime).Unix(),
		"jti": hex.EncodeToString(jti),
	}
	for _, o := range opts {
		o(header, claims)
	}
	tok := jwt.NewWithClaims(s.method, jwt.MapClaims(claims))
	tok.Header = maps.Clone(header)
	signed, err := tok.SignedString(s.private)
	if err != nil {
		t.Fatalf("authntest: signing token: %v", err)
	}
	return signed
}

// BearerContext returns ctx with token attached as outgoing
// "authorization: Bearer <token>" metadata, for gRPC client calls.
func BearerContext(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// IncomingBearerContext is BearerContext as a server sees it: the token in
// incoming metadata, for calling interceptors directly (benchmarks).
func IncomingBearerContext(ctx context.Context, token string) context.Context {
	return metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+token))
}

// TamperSignature returns the JWS token with one character of its
// signature replaced by another valid base64url character: a well-formed
// token whose signature no longer verifies. (Flipping bits of whatever
// character is there can make an invalid one, '.' from '-', and a
// verifier then refuses the token as malformed, not as forged.)
func TamperSignature(token string) string {
	dot := strings.LastIndexByte(token, '.')
	if dot < 0 || dot+5 > len(token) {
		return token + "A"
	}
	b := []byte(token)
	i := dot + 1 + (len(token)-dot-1)/2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}
