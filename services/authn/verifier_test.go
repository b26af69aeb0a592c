package authn_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
)

var b64 = base64.RawURLEncoding

// forge builds a token from raw parts, signing "header.payload" with sign
// (nil: empty signature). It is how tests make tokens no honest signer would.
func forge(t testing.TB, header, claims map[string]any, sign func(input string) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	var sig []byte
	if sign != nil {
		sig = sign(input)
	}
	return input + "." + b64.EncodeToString(sig)
}

func validClaims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": authntest.DefaultIssuer, "aud": []string{authntest.DefaultAudience}, "sub": "user-1",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

func hmacWith(t testing.TB, key []byte) func(string) []byte {
	return func(input string) []byte {
		sig, err := jwt.SigningMethodHS256.Sign(input, key)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
}

func TestVerifyAcceptsEveryBoundAlgorithm(t *testing.T) {
	signers := map[string]*authntest.Signer{
		authn.AlgEdDSA: authntest.NewSignerWithKey(t, "k-ed", edKey()),
		authn.AlgES256: authntest.NewSignerWithKey(t, "k-ec", ecKey()),
		authn.AlgRS256: authntest.NewSignerWithKey(t, "k-rsa", rsaKey()),
		authn.AlgHS256: authntest.NewSignerWithKey(t, "", hsSecret),
	}
	for alg, s := range signers {
		t.Run(alg, func(t *testing.T) {
			v := s.Verifier(t)
			tok := s.Token(t, "user-42", authntest.Roles("admin", "service"), authntest.Claim("jti", "id-1"))
			c, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Subject != "user-42" || c.Issuer != authntest.DefaultIssuer || !slices.Contains(c.Audience, authntest.DefaultAudience) ||
				c.ID != "id-1" || c.KeyID != s.Key().ID || c.ExpiresAt.IsZero() || c.IssuedAt.IsZero() || c.NotBefore.IsZero() {
				t.Errorf("claims = %+v", c)
			}
			if !c.HasRole("admin") || !c.HasRole("service") || c.HasRole("root") {
				t.Errorf("roles = %v", c.Roles)
			}
		})
	}
}

func TestVerifyAcceptsVariants(t *testing.T) {
	s := authntest.NewSigner(t)
	v := s.Verifier(t)
	for name, opts := range map[string][]authntest.TokenOption{
		"typ application/at+jwt":      {authntest.Header("typ", "application/at+jwt")},
		"typ upper case":              {authntest.Header("typ", "AT+JWT")},
		"aud among several":           {authntest.Audience("other", authntest.DefaultAudience)},
		"aud as a single string":      {authntest.Claim("aud", authntest.DefaultAudience)},
		"no nbf, no iat":              {authntest.Claim("nbf", nil), authntest.Claim("iat", nil)},
		"nbf within leeway":           {authntest.NotBefore(time.Now().Add(10 * time.Second))},
		"iat within leeway":           {authntest.IssuedAt(time.Now().Add(10 * time.Second))},
		"expired but within leeway":   {authntest.ExpiresIn(-10 * time.Second)},
		"no roles":                    {authntest.Claim("roles", nil)},
		"unknown extra claim ignored": {authntest.Claim("scope", "a b")},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Verify(context.Background(), s.Token(t, "u", opts...)); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	ctx := context.Background()
	ed := authntest.NewSignerWithKey(t, "k-ed", edKey())
	ec := authntest.NewSignerWithKey(t, "k-ec", ecKey())
	rs := authntest.NewSignerWithKey(t, "k-rsa", rsaKey())
	stranger := authntest.NewSignerWithKey(t, "k-ed", newEd25519(t)) // same kid, other key
	unknownKid := authntest.NewSignerWithKey(t, "k-unknown", newEd25519(t))
	keys, err := authn.NewStaticKeySet(ed.Key(), ec.Key(), rs.Key())
	if err != nil {
		t.Fatal(err)
	}

	edPubBytes := []byte(ed.Key().Public.(ed25519.PublicKey))
	rsaDER, err := x509.MarshalPKIXPublicKey(&rsaKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER})

	valid := ed.Token(t, "user-1")
	parts := strings.Split(valid, ".")
	otherPayload := strings.Split(ed.Token(t, "admin"), ".")[1]
	flip := func(seg string) string { // change one character, keeping valid base64url
		b := []byte(seg)
		i := len(b) / 2
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	noneHeader := func(alg string) map[string]any { return map[string]any{"alg": alg, "typ": "at+jwt", "kid": "k-ed"} }
	hugeKid := strings.Repeat("k", 1024)

	tests := []struct {
		name        string
		reason      string // the fixed reason the error must give
		token       string
		wantExpired bool
		wantUnknown bool
		noLookup    bool // must be rejected before the key set is asked
	}{
		// Unsigned and algorithm confusion.
		{name: "alg none", reason: "invalid signature or alg", token: forge(t, noneHeader("none"), validClaims(), nil), noLookup: true},
		{name: "alg None", reason: "unsupported alg", token: forge(t, noneHeader("None"), validClaims(), nil), noLookup: true},
		{name: "alg NONE", reason: "unsupported alg", token: forge(t, noneHeader("NONE"), validClaims(), nil), noLookup: true},
		{name: "alg nOnE with a signature", reason: "unsupported alg", token: forge(t, noneHeader("nOnE"), validClaims(), hmacWith(t, edPubBytes)), noLookup: true},
		{name: "HS256 signed with the Ed25519 public key bytes", reason: "alg does not match the key's algorithm", token: forge(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "k-ed"}, validClaims(), hmacWith(t, edPubBytes))},
		{name: "HS256 signed with the RSA public key PEM", reason: "alg does not match the key's algorithm", token: forge(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "k-rsa"}, validClaims(), hmacWith(t, rsaPEM))},
		{name: "HS256 signed with the RSA public key DER", reason: "alg does not match the key's algorithm", token: forge(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "k-rsa"}, validClaims(), hmacWith(t, rsaDER))},
		{name: "ES256 token naming the RSA key", reason: "alg does not match the key's algorithm", token: ec.Token(t, "u", authntest.Header("kid", "k-rsa"))},
		{name: "RS256 header on an ES256 signature", reason: "alg does not match the key's algorithm", token: ec.Token(t, "u", authntest.Header("alg", "RS256"))},
		{name: "PS256 (never issued)", reason: "invalid signature or alg", token: rs.Token(t, "u", authntest.Header("alg", "PS256")), noLookup: true},
		{name: "alg missing", reason: "unsupported alg", token: ed.Token(t, "u", authntest.Header("alg", nil)), noLookup: true},
		{name: "alg not a string", reason: "unsupported alg", token: ed.Token(t, "u", authntest.Header("alg", 7)), noLookup: true},

		// Header rules.
		{name: "typ missing", reason: "typ must be at+jwt", token: ed.Token(t, "u", authntest.Header("typ", nil)), noLookup: true},
		{name: "typ JWT", reason: "typ must be at+jwt", token: ed.Token(t, "u", authntest.Header("typ", "JWT")), noLookup: true},
		{name: "typ at+jwt+x", reason: "typ must be at+jwt", token: ed.Token(t, "u", authntest.Header("typ", "at+jwtx")), noLookup: true},
		{name: "crit header", reason: "unsupported critical header", token: ed.Token(t, "u", authntest.Header("crit", []string{"exp"})), noLookup: true},
		{name: "kid missing", reason: "missing kid", token: ed.Token(t, "u", authntest.Header("kid", nil)), noLookup: true},
		{name: "kid empty", reason: "malformed kid", token: ed.Token(t, "u", authntest.Header("kid", "")), noLookup: true},
		{name: "kid ../ traversal", reason: "malformed kid", token: ed.Token(t, "u", authntest.Header("kid", "../../etc/passwd")), noLookup: true},
		{name: "kid absolute path", reason: "malformed kid", token: ed.Token(t, "u", authntest.Header("kid", "/etc/passwd")), noLookup: true},
		{name: "kid with slash", reason: "malformed kid", token: ed.Token(t, "u", authntest.Header("kid", "a/b")), noLookup: true},
		{name: "kid 1 KiB", reason: "malformed kid", token: ed.Token(t, "u", authntest.Header("kid", hugeKid)), noLookup: true},
		{name: "kid not a string", reason: "malformed kid", token: ed.Token(t, "u", authntest.Header("kid", 1)), noLookup: true},
		{name: "kid unknown", reason: "unknown kid", token: unknownKid.Token(t, "u"), wantUnknown: true},

		// Claims.
		{name: "iss wrong", reason: "wrong issuer", token: ed.Token(t, "u", authntest.Issuer("https://evil.example"))},
		{name: "iss missing", reason: "missing iss claim", token: ed.Token(t, "u", authntest.Claim("iss", nil))},
		{name: "aud wrong", reason: "wrong audience", token: ed.Token(t, "u", authntest.Audience("other-service"))},
		{name: "aud missing", reason: "missing aud claim", token: ed.Token(t, "u", authntest.Claim("aud", nil))},
		{name: "aud empty list", reason: "missing aud claim", token: ed.Token(t, "u", authntest.Audience())},
		{name: "exp missing", reason: "missing exp claim", token: ed.Token(t, "u", authntest.Claim("exp", nil))},
		{name: "expired", reason: "token expired", token: ed.Token(t, "u", authntest.ExpiresIn(-time.Hour)), wantExpired: true},
		{name: "expired beyond leeway", reason: "token expired", token: ed.Token(t, "u", authntest.ExpiresIn(-31*time.Second)), wantExpired: true},
		{name: "nbf in the future", reason: "token not valid yet", token: ed.Token(t, "u", authntest.NotBefore(time.Now().Add(time.Hour)))},
		{name: "iat in the future", reason: "token issued in the future", token: ed.Token(t, "u", authntest.IssuedAt(time.Now().Add(time.Hour)))},
		{name: "sub missing", reason: "missing sub claim", token: ed.Token(t, "u", authntest.Claim("sub", nil))},
		{name: "sub empty", reason: "missing sub claim", token: ed.Token(t, "")},
		{name: "exp as string", reason: "malformed token", token: ed.Token(t, "u", authntest.Claim("exp", "tomorrow"))},
		{name: "roles not strings", reason: "malformed token", token: ed.Token(t, "u", authntest.Claim("roles", []int{1}))},
		{name: "aud not strings", reason: "malformed token", token: ed.Token(t, "u", authntest.Claim("aud", 5))},

		// Tampering.
		{name: "tampered header", reason: "malformed token", token: flip(parts[0]) + "." + parts[1] + "." + parts[2]},
		{name: "tampered payload", reason: "malformed token", token: parts[0] + "." + flip(parts[1]) + "." + parts[2]},
		{name: "header re-encoded", reason: "invalid signature or alg", token: reencodeHeader(t, parts[0]) + "." + parts[1] + "." + parts[2]},
		{name: "payload swapped", reason: "invalid signature or alg", token: parts[0] + "." + otherPayload + "." + parts[2]},
		{name: "tampered signature", reason: "invalid signature or alg", token: parts[0] + "." + parts[1] + "." + flip(parts[2])},
		{name: "signature stripped", reason: "invalid signature or alg", token: parts[0] + "." + parts[1] + "."},
		{name: "signed by another key with the same kid", reason: "invalid signature or alg", token: stranger.Token(t, "u")},
		{name: "padded base64", reason: "malformed token", token: parts[0] + "=." + parts[1] + "." + parts[2], noLookup: true},
		{name: "line break in the signature", reason: "malformed token", token: parts[0] + "." + parts[1] + "." + parts[2][:10] + "\n" + parts[2][10:], noLookup: true},
		{name: "trailing CRLF", reason: "malformed token", token: valid + "\r\n", noLookup: true},
		{name: "standard base64 alphabet", reason: "malformed token", token: parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+/", noLookup: true},

		// Garbage.
		{name: "empty", reason: "empty token", token: "", noLookup: true},
		{name: "a.b.c", reason: "malformed token", token: "a.b.c", noLookup: true},
		{name: "one segment", reason: "malformed token", token: "abc", noLookup: true},
		{name: "four segments", reason: "malformed token", token: valid + ".x", noLookup: true},
		{name: "random bytes", reason: "malformed token", token: string(randomBytes(t, 300)), noLookup: true},
		{name: "invalid base64", reason: "malformed token", token: "!!!.###.$$$", noLookup: true},
		{name: "invalid JSON header", reason: "malformed token", token: b64.EncodeToString([]byte("{not json")) + "." + parts[1] + "." + parts[2], noLookup: true},
		{name: "invalid JSON payload", reason: "malformed token", token: parts[0] + "." + b64.EncodeToString([]byte(`{"sub":`)) + "." + parts[2], noLookup: true},
		{name: "header is JSON null", reason: "unsupported alg", token: b64.EncodeToString([]byte("null")) + "." + parts[1] + "." + parts[2], noLookup: true},
		{name: "bearer prefix left in", reason: "malformed token", token: "Bearer " + valid, noLookup: true},
		{name: "larger than 8 KiB", reason: "token too large", token: ed.Token(t, "u", authntest.Claim("pad", strings.Repeat("x", authn.MaxTokenSize))), noLookup: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks := &countingKeySet{KeySet: keys}
			v, err := authn.NewVerifier(ks, authntest.DefaultIssuer, authntest.DefaultAudience)
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(ctx, tt.token)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", c)
			}
			if c != nil {
				t.Errorf("claims returned alongside an error")
			}
			if !errors.Is(err, authn.ErrInvalidToken) {
				t.Errorf("error %v does not wrap ErrInvalidToken", err)
			}
			if got := errors.Is(err, authn.ErrExpired); got != tt.wantExpired {
				t.Errorf("errors.Is(ErrExpired) = %v, want %v (err: %v)", got, tt.wantExpired, err)
			}
			if got := errors.Is(err, authn.ErrUnknownKey); got != tt.wantUnknown {
				t.Errorf("errors.Is(ErrUnknownKey) = %v, want %v (err: %v)", got, tt.wantUnknown, err)
			}
			if tt.noLookup && ks.lookups.Load() != 0 {
				t.Errorf("key set consulted %d times; the rule must reject before any lookup", ks.lookups.Load())
			}
			assertNoTokenText(t, err, tt.token)
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error = %q, want reason %q", err, tt.reason)
			}
		})
	}
}

// assertNoTokenText checks that err quotes no recognisable part of token.
func assertNoTokenText(t *testing.T, err error, token string) {
	t.Helper()
	for _, seg := range strings.Split(token, ".") {
		if len(seg) >= 12 && strings.Contains(err.Error(), seg) {
			t.Errorf("error message contains token text: %q", err.Error())
		}
	}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifySecretKeySet(t *testing.T) {
	s := authntest.NewSignerWithKey(t, "", hsSecret)
	v := s.Verifier(t)
	ctx := context.Background()
	for name, tok := range map[string]string{
		"no kid":  s.Token(t, "u"),
		"any kid": s.Token(t, "u", authntest.Header("kid", "whatever-1")),
	} {
		c, err := v.Verify(ctx, tok)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if name == "any kid" && c.KeyID != "whatever-1" {
			t.Errorf("KeyID = %q", c.KeyID)
		}
	}
	// The kid format rule still applies, and asymmetric tokens do not pass.
	for name, tok := range map[string]string{
		"bad kid":             s.Token(t, "u", authntest.Header("kid", "../x")),
		"EdDSA token":         authntest.NewSignerWithKey(t, "k", edKey()).Token(t, "u"),
		"other secret":        authntest.NewSignerWithKey(t, "", []byte(strings.Repeat("z", 32))).Token(t, "u"),
		"HS256 alg, ES256sig": forge(t, map[string]any{"alg": "ES256", "typ": "at+jwt"}, validClaims(), hmacWith(t, hsSecret)),
	} {
		if _, err := v.Verify(ctx, tok); !errors.Is(err, authn.ErrInvalidToken) {
			t.Errorf("%s: err = %v, want ErrInvalidToken", name, err)
		}
	}
}

func TestVerifyLeewayAndClock(t *testing.T) {
	s := authntest.NewSigner(t)
	tok := s.Token(t, "u", authntest.ExpiresIn(-10*time.Second), authntest.Claim("nbf", nil), authntest.Claim("iat", nil))
	strict, err := authn.NewVerifier(s.KeySet(t), s.Issuer, s.Audience, authn.WithLeeway(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strict.Verify(context.Background(), tok); !errors.Is(err, authn.ErrExpired) {
		t.Errorf("leeway 0: err = %v, want ErrExpired", err)
	}
	past := s.Verifier(t, authn.WithClock(func() time.Time { return time.Now().Add(-time.Hour) }))
	if _, err := past.Verify(context.Background(), tok); err != nil {
		t.Errorf("clock an hour back: %v", err)
	}
}

func TestNewVerifierRequiresIssuerAndAudience(t *testing.T) {
	ks := authntest.NewSigner(t).KeySet(t)
	for _, args := range [][2]string{{"", "aud"}, {"iss", ""}} {
		if _, err := authn.NewVerifier(ks, args[0], args[1]); err == nil {
			t.Errorf("NewVerifier(%q, %q) succeeded", args[0], args[1])
		}
	}
	if _, err := authn.NewVerifier(nil, "iss", "aud"); err == nil {
		t.Error("NewVerifier(nil keys) succeeded")
	}
}

// unavailableKeySet is a key set that never loaded.
type unavailableKeySet struct{ authn.KeySet }

func (unavailableKeySet) Lookup(context.Context, string) (authn.Key, error) {
	return authn.Key{}, authn.ErrKeysUnavailable
}

func TestVerifyKeysUnavailableIsNotInvalid(t *testing.T) {
	s := authntest.NewSigner(t)
	v, err := authn.NewVerifier(unavailableKeySet{s.KeySet(t)}, s.Issuer, s.Audience)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), s.Token(t, "u"))
	if !errors.Is(err, authn.ErrKeysUnavailable) || errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("err = %v, want ErrKeysUnavailable only", err)
	}
}

// reencodeHeader returns the same header with one extra member: still valid
// JSON naming the same key, but no longer what was signed.
func reencodeHeader(t testing.TB, seg string) string {
	raw, err := b64.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	h["x-extra"] = true
	out, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(out)
}

// TestVerifyAcceptedIssuers: during a change of issuer URL the verifier
// also takes the old issuer's tokens (same keys), and still refuses any
// other issuer, a missing iss, and another key set's tokens.
func TestVerifyAcceptedIssuers(t *testing.T) {
	s := authntest.NewSigner(t)
	v, err := authn.NewVerifier(s.KeySet(t), s.Issuer, s.Audience, authn.WithAcceptedIssuers("gatehouse-auth"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, iss := range []string{s.Issuer, "gatehouse-auth"} {
		c, err := v.Verify(ctx, s.Token(t, "u", authntest.Issuer(iss)))
		if err != nil || c.Issuer != iss {
			t.Errorf("iss %q: %+v, %v", iss, c, err)
		}
	}
	for name, tok := range map[string]string{
		"other issuer": s.Token(t, "u", authntest.Issuer("https://evil.example")),
		"no iss":       s.Token(t, "u", authntest.Claim("iss", nil)),
		"other key":    authntest.NewSigner(t).Token(t, "u", authntest.Issuer("gatehouse-auth")),
	} {
		if _, err := v.Verify(ctx, tok); !errors.Is(err, authn.ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", name, err)
		}
	}
	if _, err := authn.NewVerifier(s.KeySet(t), s.Issuer, s.Audience, authn.WithAcceptedIssuers("")); err == nil {
		t.Error("an empty accepted issuer was taken")
	}
}
