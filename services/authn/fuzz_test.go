package authn_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
)

// FuzzVerify feeds arbitrary strings to Verify. It must never panic, every
// error must be one of ours, and anything it accepts must satisfy every
// rule. Run it with:
//
//	go test -run '^$' -fuzz FuzzVerify ./services/authn/
func FuzzVerify(f *testing.F) {
	// Fixed keys, so corpus entries found by the fuzzer stay meaningful
	// across runs.
	edPriv := ed25519.NewKeyFromSeed([]byte("gatehouse-authn-fuzz-seed-32byte"))
	ed := authntest.NewSignerWithKey(f, "fuzz-ed", edPriv)
	hs := authntest.NewSignerWithKey(f, "", []byte("gatehouse-authn-fuzz-hmac-secret-0123456789"))
	verifiers := []*authn.Verifier{ed.Verifier(f), hs.Verifier(f)}

	valid := ed.Token(f, "user-1", authntest.Roles("admin"))
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		valid,
		hs.Token(f, "user-2"),
		hs.Token(f, "user-2", authntest.Header("kid", "k1")),
		ed.Token(f, "u", authntest.ExpiresIn(-time.Hour)),
		ed.Token(f, "u", authntest.Audience("other")),
		ed.Token(f, "u", authntest.Header("typ", "JWT")),
		ed.Token(f, "u", authntest.Header("kid", "../../etc/passwd")),
		ed.Token(f, "", authntest.Claim("exp", nil)),
		parts[0] + "." + parts[1] + ".",
		b64.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt","kid":"fuzz-ed"}`)) + "." + parts[1] + ".",
		b64.EncodeToString([]byte(`{"alg":"HS256","typ":"at+jwt","kid":"fuzz-ed"}`)) + "." + parts[1] + "." + parts[2],
		"", "a.b.c", "...", "eyJ.eyJ.", "Bearer " + valid, valid + "\n", strings.Repeat("A", authn.MaxTokenSize+1),
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, token string) {
		for _, v := range verifiers {
			c, err := v.Verify(context.Background(), token)
			if err != nil {
				if c != nil {
					t.Fatal("claims returned with an error")
				}
				if !errors.Is(err, authn.ErrInvalidToken) {
					t.Fatalf("error %v is not ErrInvalidToken", err)
				}
				if len(token) >= 32 && strings.Contains(err.Error(), token) {
					t.Fatalf("error quotes the token")
				}
				continue
			}
			// Accepted: every rule must hold.
			now := time.Now()
			switch {
			case c == nil:
				t.Fatal("nil claims without an error")
			case len(token) > authn.MaxTokenSize:
				t.Fatalf("accepted a %d-byte token", len(token))
			case strings.Trim(token, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "":
				t.Fatalf("accepted a token with characters outside base64url: %q", token)
			case c.Issuer != authntest.DefaultIssuer:
				t.Fatalf("accepted issuer %q", c.Issuer)
			case !slices.Contains(c.Audience, authntest.DefaultAudience):
				t.Fatalf("accepted audience %q", c.Audience)
			case c.Subject == "":
				t.Fatal("accepted an empty subject")
			case c.ExpiresAt.IsZero() || !now.Before(c.ExpiresAt.Add(authn.DefaultLeeway)):
				t.Fatalf("accepted exp %v", c.ExpiresAt)
			case !c.NotBefore.IsZero() && now.Before(c.NotBefore.Add(-authn.DefaultLeeway)):
				t.Fatalf("accepted nbf %v", c.NotBefore)
			case !c.IssuedAt.IsZero() && now.Before(c.IssuedAt.Add(-authn.DefaultLeeway)):
				t.Fatalf("accepted iat %v", c.IssuedAt)
			case c.KeyID != "" && !authn.ValidKeyID(c.KeyID):
				t.Fatalf("accepted kid %q", c.KeyID)
			}
		}
	})
}
