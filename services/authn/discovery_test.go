package authn_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
)

func TestCheckIssuer(t *testing.T) {
	tests := []struct {
		issuer string
		want   string // "" = accepted
	}{
		{"https://auth.example.com", ""},
		{"https://auth.example.com:8443/tenants/a", ""},
		{"http://localhost:8082", ""},
		{"gatehouse-auth", "want an absolute https URL"},
		{"", "want an absolute https URL"},
		{"ftp://auth.example.com", "want an absolute https URL"},
		{"https://", "want an absolute https URL"},
		{"https:auth.example.com", "want an absolute https URL"},
		{"https://auth.example.com/", "no trailing slash"},
		{"https://auth.example.com?tenant=a", "no query or fragment"},
		{"https://auth.example.com?", "no query or fragment"},
		{"https://auth.example.com#x", "no query or fragment"},
		{"https://user:pw@auth.example.com", "no user info"},
		{"HTTPS://auth.example.com", "not in canonical form"},
		{"https://auth.example.com/\x00", "is not a URL"},
	}
	for _, tt := range tests {
		err := authn.CheckIssuer(tt.issuer)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckIssuer(%q) = %v, want accepted", tt.issuer, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckIssuer(%q) = %v, want %q", tt.issuer, err, tt.want)
		}
	}
}

// issuerServer serves a discovery document naming its own JWKS.
type issuerServer struct {
	*httptest.Server
	doc       atomic.Pointer[[]byte] // nil: derive from the server's URL
	jwks      atomic.Pointer[[]byte]
	discovery atomic.Int64
}

func newIssuerServer(t *testing.T, jwksBody []byte) *issuerServer {
	t.Helper()
	s := &issuerServer{}
	s.jwks.Store(&jwksBody)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case authn.OpenIDConfigurationPath:
			s.discovery.Add(1)
			if d := s.doc.Load(); d != nil {
				_, _ = w.Write(*d)
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": s.URL, "jwks_uri": s.URL + "/keys"})
		case "/keys":
			_, _ = w.Write(*s.jwks.Load())
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// TestIssuerKeySetVerifiesFromTheIssuerAlone: configured with the issuer
// URL only, the key set finds the JWKS through discovery, and a verifier
// built on it accepts the issuer's tokens.
func TestIssuerKeySetVerifiesFromTheIssuerAlone(t *testing.T) {
	signer := authntest.NewSigner(t)
	srv := newIssuerServer(t, jwks(t, jwk(t, signer.Key().Public, signer.Key().ID, "", "sig")))
	signer.Issuer = srv.URL
	ks, err := authn.NewIssuerKeySet(context.Background(), srv.URL, srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ks.Close() })
	waitReady(t, ks)
	v, err := authn.NewVerifier(ks, srv.URL, signer.Audience)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), signer.Token(t, "user-1")); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if srv.discovery.Load() == 0 {
		t.Error("the discovery document was never fetched")
	}
}

// TestDiscoverRefusesBadDocuments: a document must name the issuer asked
// for, point at an absolute JWKS URL (https under an https issuer), and be
// small JSON; anything else is an error and no keys come from it.
func TestDiscoverRefusesBadDocuments(t *testing.T) {
	srv := newIssuerServer(t, nil)
	doc := func(v map[string]any) []byte { b, _ := json.Marshal(v); return b }
	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"other issuer", doc(map[string]any{"issuer": "https://evil.example", "jwks_uri": srv.URL + "/keys"}), "names issuer"},
		{"issuer with slash", doc(map[string]any{"issuer": srv.URL + "/", "jwks_uri": srv.URL + "/keys"}), "names issuer"},
		{"no jwks_uri", doc(map[string]any{"issuer": srv.URL}), "not an absolute http(s) URL"},
		{"relative jwks_uri", doc(map[string]any{"issuer": srv.URL, "jwks_uri": "/keys"}), "not an absolute http(s) URL"},
		{"file jwks_uri", doc(map[string]any{"issuer": srv.URL, "jwks_uri": "file:///etc/passwd"}), "not an absolute http(s) URL"},
		{"not JSON", []byte("<html>"), "not a JSON object"},
		{"JSON array", []byte("[]"), "not a JSON object"},
		{"wrong types", []byte(`{"issuer": 7}`), "not a JSON object"},
		{"too large", append([]byte(`{"issuer":"`), bytes.Repeat([]byte("a"), 70<<10)...), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.doc.Store(&tt.body)
			_, err := authn.Discover(context.Background(), srv.Client(), srv.URL)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Discover = %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("404", func(t *testing.T) {
		_, err := authn.Discover(context.Background(), srv.Client(), srv.URL+"/nowhere")
		if err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("Discover = %v, want the 404", err)
		}
	})
	t.Run("plaintext jwks under https issuer", func(t *testing.T) {
		tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		defer tls.Close()
		body := doc(map[string]any{"issuer": tls.URL, "jwks_uri": "http://" + strings.TrimPrefix(tls.URL, "https://") + "/keys"})
		tls.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) })
		_, err := authn.Discover(context.Background(), tls.Client(), tls.URL)
		if err == nil || !strings.Contains(err.Error(), "plaintext under an https issuer") {
			t.Fatalf("Discover = %v, want refused", err)
		}
	})
	t.Run("bad issuer", func(t *testing.T) {
		if _, err := authn.NewIssuerKeySet(context.Background(), "gatehouse-auth", nil, nil); err == nil {
			t.Fatal("NewIssuerKeySet accepted an issuer that is not a URL")
		}
	})
}

// bodyTransport answers every request with one body, so the fuzzer reaches
// the parser without a socket.
type bodyTransport []byte

func (b bodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(bytes.NewReader(b)), Request: r, Header: http.Header{}}, nil
}

// FuzzDiscover feeds arbitrary documents to Discover: it must never panic,
// and anything it accepts names the issuer and an absolute JWKS URL.
//
//	go test -run '^$' -fuzz FuzzDiscover ./services/authn/
func FuzzDiscover(f *testing.F) {
	const issuer = "https://auth.example.com"
	f.Add([]byte(`{"issuer":"https://auth.example.com","jwks_uri":"https://auth.example.com/.well-known/jwks.json"}`))
	f.Add([]byte(`{"issuer":"https://auth.example.com","jwks_uri":"http://auth.example.com/k"}`))
	f.Add([]byte(`{"issuer":"https://auth.example.com/","jwks_uri":"https://x"}`))
	f.Add([]byte(`{"issuer":"https://auth.example.com","jwks_uri":"https://x","id_token_signing_alg_values_supported":["EdDSA"]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"issuer":"https://auth.example.com","jwks_uri":"//x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		md, err := authn.Discover(context.Background(), &http.Client{Transport: bodyTransport(body)}, issuer)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("in-memory transport timed out: %v", err)
			}
			return
		}
		if md.Issuer != issuer || !strings.HasPrefix(md.JWKSURI, "https://") || len(md.JWKSURI) == len("https://") {
			t.Fatalf("accepted %q: %+v", body, md)
		}
	})
}

// TestIssuerKeySetFollowsDiscovery: each fetch reads the discovery document
// again, so a jwks_uri that moves (a new key under a new path, say) is
// followed without a restart; until the first keys arrive Wait blocks, and
// gives up with ErrKeysUnavailable when its context ends.
func TestIssuerKeySetFollowsDiscovery(t *testing.T) {
	a, b := authntest.NewSigner(t), authntest.NewSignerWithKey(t, "second", ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	srv := newIssuerServer(t, jwks(t, jwk(t, a.Key().Public, a.Key().ID, "", "sig")))
	down := []byte("{}") // names no issuer: refused until the test fixes it
	srv.doc.Store(&down)
	ks, err := authn.NewIssuerKeySet(context.Background(), srv.URL, srv.Client(), nil, authn.WithJWKSRetryBackoff(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ks.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := ks.Wait(ctx); !errors.Is(err, authn.ErrKeysUnavailable) {
		t.Fatalf("Wait with a bad discovery document = %v, want ErrKeysUnavailable", err)
	}
	srv.doc.Store(nil) // the real document
	if err := ks.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Lookup(context.Background(), a.Key().ID); err != nil {
		t.Fatalf("first key: %v", err)
	}

	moved := jwks(t, jwk(t, b.Key().Public, b.Key().ID, "", "sig"))
	mux := http.NewServeMux()
	mux.HandleFunc("/keys2", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(moved) })
	other := httptest.NewServer(mux)
	defer other.Close()
	doc, _ := json.Marshal(map[string]string{"issuer": srv.URL, "jwks_uri": other.URL + "/keys2"})
	srv.doc.Store(&doc)
	if err := ks.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Lookup(context.Background(), b.Key().ID); err != nil {
		t.Errorf("key at the moved jwks_uri: %v", err)
	}
	if _, err := ks.Lookup(context.Background(), a.Key().ID); err == nil {
		t.Error("the old JWKS's key still verifies after the issuer moved its keys")
	}
}

// TestNoPlaintextBehindAnHTTPSRedirect: an https issuer whose JWKS (or
// discovery document) redirects to http must not load keys from there: the
// https in the URL is what the operator trusted.
func TestNoPlaintextBehindAnHTTPSRedirect(t *testing.T) {
	signer := authntest.NewSigner(t)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(jwks(t, jwk(t, signer.Key().Public, signer.Key().ID, "", "sig")))
	}))
	defer plain.Close()
	var issuer string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case authn.OpenIDConfigurationPath:
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": issuer + "/keys"})
		case "/keys":
			http.Redirect(w, r, plain.URL+"/keys", http.StatusFound)
		}
	}))
	defer srv.Close()
	issuer = srv.URL
	ks, err := authn.NewIssuerKeySet(context.Background(), issuer, srv.Client(), nil, authn.WithJWKSRetryBackoff(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ks.Close() }()
	if err := ks.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "refusing a redirect from https") {
		t.Fatalf("Refresh = %v, want the redirect to http refused", err)
	}
	if ks.Ready() {
		t.Fatal("keys loaded from a plaintext redirect")
	}

	// The discovery document itself, redirected to http.
	redirecting := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusMovedPermanently)
	}))
	defer redirecting.Close()
	if _, err := authn.Discover(context.Background(), redirecting.Client(), redirecting.URL); err == nil || !strings.Contains(err.Error(), "refusing a redirect") {
		t.Fatalf("Discover = %v, want the redirect to http refused", err)
	}
}
