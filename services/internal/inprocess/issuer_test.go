package inprocess

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"

	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	authapp "github.com/gatehouse-dev/gatehouse/services/internal/auth/app"
	"github.com/gatehouse-dev/gatehouse/services/internal/identity"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/rpcerr"
)

// TestIssuerMetadata: both discovery documents name the issuer and its
// JWKS, list the keys' algorithm and no flow Gatehouse does not run, and
// are cached like the JWKS.
func TestIssuerMetadata(t *testing.T) {
	p := startPair(t)
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		t.Run(path, func(t *testing.T) {
			resp, err := http.Get(p.issuer + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("GET %s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			var md map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
				t.Fatal(err)
			}
			if md["issuer"] != p.issuer || md["jwks_uri"] != p.issuer+"/.well-known/jwks.json" {
				t.Errorf("issuer %v, jwks_uri %v; want %s and its JWKS", md["issuer"], md["jwks_uri"], p.issuer)
			}
			if got, _ := json.Marshal(md["id_token_signing_alg_values_supported"]); string(got) != `["EdDSA"]` {
				t.Errorf("signing algorithms %s, want [\"EdDSA\"]", got)
			}
			for _, f := range []string{"response_types_supported", "grant_types_supported"} {
				if got, _ := json.Marshal(md[f]); string(got) != `[]` {
					t.Errorf("%s = %s: Gatehouse runs no OAuth flow over HTTP", f, got)
				}
			}
			for _, f := range []string{"authorization_endpoint", "token_endpoint"} {
				if _, ok := md[f]; ok {
					t.Errorf("%s advertised, but there is none", f)
				}
			}
			etag := resp.Header.Get("ETag")
			if !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") || etag == "" {
				t.Errorf("cache headers: %v", resp.Header)
			}
			req, _ := http.NewRequest(http.MethodGet, p.issuer+path, nil)
			req.Header.Set("If-None-Match", etag)
			again, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = again.Body.Close()
			if again.StatusCode != http.StatusNotModified {
				t.Errorf("conditional GET = %d, want 304", again.StatusCode)
			}
		})
	}
}

// TestClientID: a Login names its client (or gets the default); every
// access token of the session carries it, refreshed ones too, and
// ValidateToken reports it. A client the server does not know is refused.
func TestClientID(t *testing.T) {
	p := startPair(t, "CLIENT_IDS=gatehouse,cli.example")
	ctx := context.Background()
	if _, err := p.users.CreateUser(ctx, &userv1.CreateUserRequest{Email: "cy@example.com", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	clientOf := func(tok string) any {
		claims := jwt.MapClaims{}
		if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
			t.Fatal(err)
		}
		return claims["client_id"]
	}
	for _, tt := range []struct{ asked, want string }{{"", "gatehouse"}, {"cli.example", "cli.example"}} {
		login, err := p.auth.Login(ctx, &authv1.LoginRequest{Email: "cy@example.com", Password: "correct horse battery", ClientId: tt.asked})
		if err != nil {
			t.Fatalf("Login(client_id %q): %v", tt.asked, err)
		}
		if got := clientOf(login.GetAccessToken()); got != tt.want {
			t.Errorf("Login(client_id %q): token client_id %v, want %s", tt.asked, got, tt.want)
		}
		refreshed, err := p.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: login.GetRefreshToken()})
		if err != nil {
			t.Fatal(err)
		}
		if got := clientOf(refreshed.GetAccessToken()); got != tt.want {
			t.Errorf("refreshed token of client %s: client_id %v", tt.want, got)
		}
		valid, err := p.auth.ValidateToken(ctx, &authv1.ValidateTokenRequest{AccessToken: refreshed.GetAccessToken()})
		if err != nil || valid.GetClientId() != tt.want {
			t.Errorf("ValidateToken: client_id %q, %v; want %s", valid.GetClientId(), err, tt.want)
		}
	}
	for _, bad := range []string{"stranger", strings.Repeat("a", 10_000), "a,b"} {
		_, err := p.auth.Login(ctx, &authv1.LoginRequest{Email: "cy@example.com", Password: "correct horse battery", ClientId: bad})
		wantCode(t, err, codes.InvalidArgument)
		if err != nil && !strings.Contains(err.Error(), "client_id") {
			t.Errorf("unknown client: %v, want the field named", err)
		}
	}
}

// TestRemovedClientsSessionsEnd: a client taken out of CLIENT_IDS can no
// longer refresh (REFRESH_TOKEN_INVALID), while the sessions of the
// clients that stay keep rotating. A second Auth service on the same
// database stands for the redeployed one.
func TestRemovedClientsSessionsEnd(t *testing.T) {
	p := startPair(t, "CLIENT_IDS=gatehouse,cli.example")
	ctx := context.Background()
	if _, err := p.users.CreateUser(ctx, &userv1.CreateUserRequest{Email: "rem@example.com", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	refresh := map[string]string{}
	for _, client := range []string{"gatehouse", "cli.example"} {
		login, err := p.auth.Login(ctx, &authv1.LoginRequest{Email: "rem@example.com", Password: "correct horse battery", ClientId: client})
		if err != nil {
			t.Fatal(err)
		}
		refresh[client] = login.GetRefreshToken()
	}
	redeployed := startAuthWith(t, authapp.Options{}, "DATABASE_URL=sqlite://"+p.authDB, "JWT_SIGNING_KEYS_DIR="+p.keysDir,
		"USER_SERVICE_ADDR="+p.userAddr, "JWT_ISSUER="+p.issuer, "CLIENT_IDS=gatehouse")
	if _, err := redeployed.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: refresh["gatehouse"]}); err != nil {
		t.Errorf("a kept client's session: %v", err)
	}
	_, err := redeployed.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: refresh["cli.example"]})
	wantCode(t, err, codes.Unauthenticated)
	if _, reason := rpcerr.Reason(err); reason != identity.ReasonRefreshTokenInvalid {
		t.Errorf("a removed client's session: %v, want reason %s", err, identity.ReasonRefreshTokenInvalid)
	}
}
