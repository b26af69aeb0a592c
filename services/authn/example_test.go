package authn_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"

	"github.com/gatehouse-dev/gatehouse/services/authn"
)

// exampleIssuer stands in for a Gatehouse Auth service: it serves the
// discovery document and JWKS at its URL, and mints access tokens as the
// Auth service does.
type exampleIssuer struct {
	*httptest.Server
	key ed25519.PrivateKey
}

func newExampleIssuer() *exampleIssuer {
	iss := &exampleIssuer{key: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))}
	mux := http.NewServeMux()
	iss.Server = httptest.NewServer(mux)
	mux.HandleFunc("GET "+authn.OpenIDConfigurationPath, func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss.URL, "jwks_uri": iss.URL + authn.JWKSPath})
	})
	mux.HandleFunc("GET "+authn.JWKSPath, func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: iss.key.Public(), KeyID: "2026-01", Algorithm: "EdDSA", Use: "sig"}}})
	})
	return iss
}

func (iss *exampleIssuer) token(subject string, roles ...string) string {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": iss.URL, "aud": "gatehouse", "sub": subject, "client_id": "gatehouse", "roles": roles,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(15 * time.Minute).Unix(),
	})
	tok.Header["typ"], tok.Header["kid"] = "at+jwt", "2026-01"
	s, err := tok.SignedString(iss.key)
	if err != nil {
		log.Fatal(err)
	}
	return s
}

// A service verifies Gatehouse tokens locally, configured from the issuer
// URL alone: discovery finds the JWKS, which is refreshed in the
// background and refetched when a token names a new key.
func ExampleNewIssuerKeySet() {
	iss := newExampleIssuer()
	defer iss.Close()
	ctx := context.Background()

	keys, err := authn.NewIssuerKeySet(ctx, iss.URL, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = keys.Close() }()
	if err := keys.Wait(ctx); err != nil { // the first fetch runs in the background
		log.Fatal(err)
	}
	verifier, err := authn.NewVerifier(keys, iss.URL, "gatehouse")
	if err != nil {
		log.Fatal(err)
	}
	claims, err := verifier.Verify(ctx, iss.token("0190aaaa-0000-7000-8000-000000000001", "admin"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.Subject, claims.Roles, claims.ClientID)
	// Output: 0190aaaa-0000-7000-8000-000000000001 [admin] gatehouse
}

// An HTTP API behind the middleware sees the caller's verified claims.
func ExampleVerifier_Middleware() {
	iss := newExampleIssuer()
	defer iss.Close()
	ctx := context.Background()
	keys, err := authn.NewIssuerKeySet(ctx, iss.URL, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = keys.Close() }()
	if err := keys.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	verifier, err := authn.NewVerifier(keys, iss.URL, "gatehouse")
	if err != nil {
		log.Fatal(err)
	}
	api := httptest.NewServer(verifier.Middleware("orders")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := authn.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "hello %s", claims.Subject)
	})))
	defer api.Close()

	for _, token := range []string{iss.token("ada"), "forged"} {
		req, _ := http.NewRequest(http.MethodGet, api.URL, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(body))
	}
	// Output:
	// 200  hello ada
	// 401 Bearer realm="orders", error="invalid_token", error_description="invalid token" invalid token
}

// A gRPC server demands a token on every method except those it names:
// here a public Ping, and health and reflection, which never read one.
func ExampleNewInterceptor() {
	iss := newExampleIssuer()
	defer iss.Close()
	keys, err := authn.NewIssuerKeySet(context.Background(), iss.URL, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = keys.Close() }()
	verifier, err := authn.NewVerifier(keys, iss.URL, "gatehouse")
	if err != nil {
		log.Fatal(err)
	}
	interceptor, err := authn.NewInterceptor(verifier, []string{"/orders.v1.Orders/Ping"},
		authn.WithPublicServices(authn.PublicInfrastructureServices()...))
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(interceptor.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(interceptor.StreamServerInterceptor()),
	)
	defer srv.Stop()
	fmt.Println(interceptor.IsPublic("/orders.v1.Orders/Ping"), interceptor.IsPublic("/orders.v1.Orders/Cancel"),
		interceptor.IsAnonymous("/grpc.health.v1.Health/Check"))
	// Output: true false true
}
