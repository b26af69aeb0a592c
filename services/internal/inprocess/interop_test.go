package inprocess

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/keydir"
)

// interopTokens are a genuine access token and the variants every
// independent verifier must refuse.
type interopTokens struct {
	subject, genuine                               string
	otherIssuer, tampered, notAccessToken, foreign string
}

// loginForInterop signs a user up, logs in, and mints the bad variants:
// one signed by the pair's own key for another issuer, one with a flipped
// signature, one without typ at+jwt (an ID token, say), one signed by a
// key the issuer never published.
func loginForInterop(t *testing.T, p *pair) interopTokens {
	t.Helper()
	ctx := context.Background()
	created, err := p.users.CreateUser(ctx, &userv1.CreateUserRequest{Email: "ivy@example.com", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	login, err := p.auth.Login(ctx, &authv1.LoginRequest{Email: "ivy@example.com", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	files, err := keydir.Read(p.keysDir, nil, nil)
	if err != nil || len(files) != 1 {
		t.Fatalf("pair keys: %v, %v", files, err)
	}
	key := files[0]
	mint := func(priv any, typ string, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
		tok.Header["kid"] = key.Kid
		if typ != "" {
			tok.Header["typ"] = typ
		}
		s, err := tok.SignedString(priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	claims := func(iss string) jwt.MapClaims {
		return jwt.MapClaims{"iss": iss, "aud": "gatehouse", "sub": created.GetUser().GetId(), "client_id": "gatehouse",
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "jti": uuid.NewString()}
	}
	_, stranger, _ := ed25519.GenerateKey(nil)
	return interopTokens{
		subject:        created.GetUser().GetId(),
		genuine:        login.GetAccessToken(),
		otherIssuer:    mint(key.Private, "at+jwt", claims("https://evil.example")),
		tampered:       authntest.TamperSignature(login.GetAccessToken()),
		notAccessToken: mint(key.Private, "JWT", claims(p.issuer)),
		foreign:        mint(stranger, "at+jwt", claims(p.issuer)),
	}
}

var npmOnce sync.Once

// joseVerify runs hack/interop/jose/verify.mjs (npm's jose under Node),
// installing its locked dependencies on first use.
func joseVerify(t *testing.T, issuer, token, audience string) (map[string]any, error) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "hack", "interop", "jose"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := exec.Command("node", "-p", "process.versions.node.split('.')[0]").Output()
	if major, _ := strconv.Atoi(strings.TrimSpace(string(v))); err != nil || major < 20 {
		t.Fatalf("Node.js 20 or later is needed to check interoperability with npm's jose (found %q, %v): install it", strings.TrimSpace(string(v)), err)
	}
	npmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "jose")); err == nil {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	})
	cmd := exec.Command("node", "verify.mjs", issuer, token, audience)
	cmd.Dir = dir
	out, runErr := cmd.Output()
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("verify.mjs printed %q (%v); stderr: %v", out, err, runErr)
	}
	if runErr != nil {
		return got, errors.New(got["refused"].(string))
	}
	return got, nil
}

// TestJoseVerifiesFromTheIssuerURL: npm's jose, given only the issuer URL,
// finds the keys through discovery and accepts a token from Login with
// its issuer, audience and typ; it refuses the variants.
func TestJoseVerifiesFromTheIssuerURL(t *testing.T) {
	p := startPair(t)
	toks := loginForInterop(t, p)
	got, err := joseVerify(t, p.issuer, toks.genuine, "gatehouse")
	if err != nil {
		t.Fatalf("jose refused a genuine token: %v", err)
	}
	claims, _ := got["claims"].(map[string]any)
	if claims["sub"] != toks.subject || claims["client_id"] != "gatehouse" {
		t.Errorf("jose's claims %v", claims)
	}
	for _, tt := range []struct{ name, token, audience, want string }{
		{"wrong audience", toks.genuine, "other-api", "ERR_JWT_CLAIM_VALIDATION_FAILED"},
		{"other issuer", toks.otherIssuer, "gatehouse", "ERR_JWT_CLAIM_VALIDATION_FAILED"},
		{"tampered", toks.tampered, "gatehouse", "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"},
		{"not an access token", toks.notAccessToken, "gatehouse", "ERR_JWT_CLAIM_VALIDATION_FAILED"},
		{"unpublished key", toks.foreign, "gatehouse", "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"},
	} {
		if _, err := joseVerify(t, p.issuer, tt.token, tt.audience); err == nil || err.Error() != tt.want {
			t.Errorf("%s: jose says %v, want %s", tt.name, err, tt.want)
		}
	}
}

// TestGoOIDCVerifiesFromTheIssuerURL: coreos/go-oidc, given only the
// issuer URL, does the same. It does not look at typ, so the test does,
// as RFC 9068 asks a resource server to.
func TestGoOIDCVerifiesFromTheIssuerURL(t *testing.T) {
	p := startPair(t)
	toks := loginForInterop(t, p)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, p.issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	verify := func(token, audience string) (*oidc.IDToken, error) {
		tok, err := provider.Verifier(&oidc.Config{ClientID: audience}).Verify(ctx, token)
		if err != nil {
			return nil, err
		}
		var header struct {
			Typ string `json:"typ"`
		}
		h, _ := jwt.NewParser().DecodeSegment(strings.Split(token, ".")[0])
		if json.Unmarshal(h, &header) != nil || header.Typ != "at+jwt" {
			return nil, errors.New("typ is not at+jwt")
		}
		return tok, nil
	}
	tok, err := verify(toks.genuine, "gatehouse")
	if err != nil || tok.Subject != toks.subject || tok.Issuer != p.issuer {
		t.Fatalf("go-oidc: %v, %v", tok, err)
	}
	for _, tt := range []struct{ name, token, audience, want string }{
		{"wrong audience", toks.genuine, "other-api", "expected audience"},
		{"other issuer", toks.otherIssuer, "gatehouse", "id token issued by a different provider"},
		{"tampered", toks.tampered, "gatehouse", "failed to verify signature"},
		{"not an access token", toks.notAccessToken, "gatehouse", "typ is not at+jwt"},
		{"unpublished key", toks.foreign, "gatehouse", "failed to verify signature"},
	} {
		if _, err := verify(tt.token, tt.audience); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: go-oidc says %v, want %q", tt.name, err, tt.want)
		}
	}
}
