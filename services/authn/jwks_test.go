package authn_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
)

// jwksServer is a real HTTP server publishing a JWKS the test can change,
// counting the requests it answers.
type jwksServer struct {
	*httptest.Server
	requests atomic.Int64

	mu     sync.Mutex
	body   []byte
	status int
	delay  time.Duration
	gate   chan struct{} // if non-nil, requests wait for it to close
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		body, status, delay, gate := s.body, s.status, s.delay, s.gate
		s.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(f func(s *jwksServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// jwk renders one JWKS entry with go-jose, as the Auth service would.
func jwk(t testing.TB, key any, kid, alg, use string) json.RawMessage {
	t.Helper()
	b, err := jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: use}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jwks(t testing.TB, entries ...json.RawMessage) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": entries})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newJWKSKeySet(t *testing.T, srv *jwksServer, opts ...authn.JWKSOption) *authn.JWKSKeySet {
	t.Helper()
	opts = append([]authn.JWKSOption{authn.WithJWKSRetryBackoff(10 * time.Millisecond)}, opts...)
	ks, err := authn.NewJWKSKeySet(context.Background(), srv.URL+"/.well-known/jwks.json", srv.Client(), testLogger(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ks.Close() })
	return ks
}

func waitReady(t *testing.T, ks authn.KeySet) {
	t.Helper()
	eventually(t, "the key set to become ready", ks.Ready)
}

func TestJWKSReadyOnlyAfterFirstFetch(t *testing.T) {
	signer := authntest.NewSignerWithKey(t, "a", edKey())
	srv := newJWKSServer(t, jwks(t, jwk(t, edKey().Public(), "a", "", "")))
	gate := make(chan struct{})
	srv.set(func(s *jwksServer) { s.gate = gate })

	ks := newJWKSKeySet(t, srv)
	eventually(t, "the first request", func() bool { return srv.requests.Load() == 1 })
	if ks.Ready() || ks.Generation() != 0 || ks.Keys() != nil {
		t.Fatalf("before the first fetch: Ready=%v Generation=%d Keys=%v", ks.Ready(), ks.Generation(), ks.Keys())
	}
	v, err := authn.NewVerifier(ks, authntest.DefaultIssuer, authntest.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), signer.Token(t, "u")); !errors.Is(err, authn.ErrKeysUnavailable) {
		t.Fatalf("Verify before ready: err = %v, want ErrKeysUnavailable", err)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("lookups before ready caused fetches: %d requests", n)
	}

	close(gate)
	waitReady(t, ks)
	if _, err := v.Verify(context.Background(), signer.Token(t, "u")); err != nil {
		t.Fatalf("Verify after ready: %v", err)
	}
	if ks.Generation() != 1 {
		t.Errorf("Generation = %d, want 1", ks.Generation())
	}
}

func TestJWKSRetriesUntilFirstSuccess(t *testing.T) {
	srv := newJWKSServer(t, jwks(t, jwk(t, edKey().Public(), "a", "", "")))
	srv.set(func(s *jwksServer) { s.status = http.StatusServiceUnavailable })
	ks := newJWKSKeySet(t, srv)
	eventually(t, "three failed attempts", func() bool { return srv.requests.Load() >= 3 })
	if ks.Ready() {
		t.Fatal("ready after failed fetches")
	}
	srv.set(func(s *jwksServer) { s.status = http.StatusOK })
	waitReady(t, ks)
}

func TestJWKSUnknownKidRefetchesOnceUnderConcurrency(t *testing.T) {
	srv := newJWKSServer(t, jwks(t, jwk(t, edKey().Public(), "a", "", "")))
	ks := newJWKSKeySet(t, srv)
	waitReady(t, ks)
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("requests after ready = %d, want 1", n)
	}
	// A slow endpoint, so that lookups pile up while the refetch is in flight.
	srv.set(func(s *jwksServer) { s.delay = 100 * time.Millisecond })

	lookupAll := func(kid string) (found, unknown int) {
		var wg sync.WaitGroup
		var f, u atomic.Int64
		start := make(chan struct{})
		for range 50 {
			wg.Go(func() {
				<-start
				_, err := ks.Lookup(context.Background(), kid)
				switch {
				case err == nil:
					f.Add(1)
				case errors.Is(err, authn.ErrUnknownKey):
					u.Add(1)
				default:
					t.Errorf("Lookup: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		return int(f.Load()), int(u.Load())
	}

	if found, unknown := lookupAll("nope"); found != 0 || unknown != 50 {
		t.Errorf("first burst: found %d, unknown %d", found, unknown)
	}
	if n := srv.requests.Load(); n != 2 {
		t.Errorf("requests after 50 concurrent unknown-kid lookups = %d, want 2 (one refetch)", n)
	}
	// Within the 30s budget, more unknown kids cause no request and fail
	// fast: were they to wait for a fetch, the 2s delay would show.
	srv.set(func(s *jwksServer) { s.delay = 2 * time.Second })
	begin := time.Now()
	if found, unknown := lookupAll("still-nope"); found != 0 || unknown != 50 {
		t.Errorf("second burst: found %d, unknown %d", found, unknown)
	}
	if n := srv.requests.Load(); n != 2 {
		t.Errorf("requests after a second burst = %d, want still 2", n)
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("rate-limited lookups took %v; they should fail fast", d)
	}
}

func TestJWKSRotatedInKeyIsFoundByRefetch(t *testing.T) {
	a := authntest.NewSignerWithKey(t, "a", edKey())
	bKey := newEd25519(t)
	b := authntest.NewSignerWithKey(t, "b", bKey)
	srv := newJWKSServer(t, jwks(t, jwk(t, edKey().Public(), "a", "EdDSA", "sig")))
	ks := newJWKSKeySet(t, srv)
	waitReady(t, ks)
	v, err := authn.NewVerifier(ks, authntest.DefaultIssuer, authntest.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	gen := ks.Generation()

	// The Auth service starts publishing b and signing with it.
	srv.set(func(s *jwksServer) {
		s.body = jwks(t, jwk(t, edKey().Public(), "a", "EdDSA", "sig"), jwk(t, bKey.Public(), "b", "EdDSA", "sig"))
		s.delay = 50 * time.Millisecond
	})
	var wg sync.WaitGroup
	tok := b.Token(t, "u")
	for range 50 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), tok); err != nil {
				t.Errorf("Verify with the rotated-in key: %v", err)
			}
		})
	}
	wg.Wait()
	if n := srv.requests.Load(); n != 2 {
		t.Errorf("requests = %d, want 2", n)
	}
	if ks.Generation() <= gen {
		t.Errorf("generation did not move: %d -> %d", gen, ks.Generation())
	}
	if _, err := v.Verify(context.Background(), a.Token(t, "u")); err != nil {
		t.Errorf("old key after rotation: %v", err)
	}
}

func TestJWKSBadResponsesKeepPreviousKeys(t *testing.T) {
	good := jwks(t, jwk(t, edKey().Public(), "a", "", ""))
	srv := newJWKSServer(t, good)
	ks := newJWKSKeySet(t, srv, authn.WithJWKSMaxBodySize(4096))
	waitReady(t, ks)
	gen := ks.Generation()

	bad := map[string]func(s *jwksServer){
		"invalid JSON":  func(s *jwksServer) { s.body = []byte(`{"keys": [`) },
		"not an object": func(s *jwksServer) { s.body = []byte(`[1,2]`) },
		"oversized": func(s *jwksServer) {
			s.body = append(good[:len(good)-1:len(good)-1], []byte(`,"pad":"`+strings.Repeat("x", 8192)+`"}`)...)
		},
		"no keys":        func(s *jwksServer) { s.body = []byte(`{"keys": []}`) },
		"no usable keys": func(s *jwksServer) { s.body = jwks(t, jwk(t, edKey().Public(), "a", "", "enc")) },
		"server error":   func(s *jwksServer) { s.status = http.StatusInternalServerError },
		"not found":      func(s *jwksServer) { s.status = http.StatusNotFound },
	}
	for name, breakIt := range bad {
		t.Run(name, func(t *testing.T) {
			srv.set(breakIt)
			t.Cleanup(func() { srv.set(func(s *jwksServer) { s.body, s.status = good, http.StatusOK }) })
			if err := ks.Refresh(context.Background()); err == nil {
				t.Fatal("Refresh succeeded")
			}
			if _, err := ks.Lookup(context.Background(), "a"); err != nil || !ks.Ready() || ks.Generation() != gen {
				t.Errorf("after a bad response: Lookup err=%v Ready=%v Generation=%d", err, ks.Ready(), ks.Generation())
			}
			// Still ready, with the old keys: only LastFetchOK tells the
			// operator that a newly published key would not be seen.
			if ks.LastFetchOK() {
				t.Error("LastFetchOK after a failed fetch")
			}
		})
	}
	if err := ks.Refresh(context.Background()); err != nil || !ks.LastFetchOK() {
		t.Errorf("after a good response again: Refresh err=%v LastFetchOK=%v", err, ks.LastFetchOK())
	}
}

func TestJWKSAcceptsOnlySignatureKeysBoundToTheirAlgorithm(t *testing.T) {
	privateEd, err := jose.JSONWebKey{Key: newEd25519(t), KeyID: "private", Use: "sig"}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	body := jwks(t,
		jwk(t, edKey().Public(), "ed", "", ""),                  // alg inferred
		jwk(t, &ecKey().PublicKey, "ec", "ES256", "sig"),        // explicit
		jwk(t, &rsaKey().PublicKey, "rsa", "RS256", ""),         // explicit
		jwk(t, &rsaKey().PublicKey, "rsa-ps", "PS256", "sig"),   // alg we never accept
		jwk(t, &ecKey().PublicKey, "ec-as-rsa", "RS256", "sig"), // alg inconsistent with key
		jwk(t, newEd25519(t).Public(), "enc", "", "enc"),        // not a signature key
		jwk(t, &ecP384Key().PublicKey, "p384", "", ""),          // curve refused
		jwk(t, &rsaWeakKey().PublicKey, "rsa1024", "", ""),      // too weak
		jwk(t, hsSecret, "oct", "HS256", "sig"),                 // symmetric
		privateEd,                                               // private material
		jwk(t, newEd25519(t).Public(), "", "", ""),              // no kid
		jwk(t, newEd25519(t).Public(), "../x", "", ""),          // bad kid
		jwk(t, newEd25519(t).Public(), "ed", "", ""),            // duplicate kid
		json.RawMessage(`{"kty":"XYZ","kid":"alien"}`),          // unknown type
		json.RawMessage(`"not an object"`),
	)
	srv := newJWKSServer(t, body)
	ks := newJWKSKeySet(t, srv)
	waitReady(t, ks)
	if got, want := kids(ks), "ec=ES256,ed=EdDSA,rsa=RS256"; got != want {
		t.Errorf("keys = %s, want %s", got, want)
	}
	// The duplicate did not replace the first "ed".
	k, err := ks.Lookup(context.Background(), "ed")
	if err != nil || !k.Public.(ed25519.PublicKey).Equal(edKey().Public()) {
		t.Errorf("Lookup(ed) = %v, %v; want the first entry", k, err)
	}
}

func TestJWKSPeriodicRefresh(t *testing.T) {
	srv := newJWKSServer(t, jwks(t, jwk(t, edKey().Public(), "a", "", "")))
	ks := newJWKSKeySet(t, srv, authn.WithJWKSRefreshInterval(50*time.Millisecond))
	waitReady(t, ks)
	// The Auth service retires a and publishes b; no lookup asks for b, the
	// background refresh alone must notice both changes.
	srv.set(func(s *jwksServer) { s.body = jwks(t, jwk(t, &ecKey().PublicKey, "b", "", "")) })
	eventually(t, "the refresh", func() bool { return kids(ks) == "b=ES256" })
}

func TestJWKSLookupHonoursContextWhileWaiting(t *testing.T) {
	srv := newJWKSServer(t, jwks(t, jwk(t, edKey().Public(), "a", "", "")))
	ks := newJWKSKeySet(t, srv)
	waitReady(t, ks)
	srv.set(func(s *jwksServer) { s.delay = 10 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if _, err := ks.Lookup(ctx, "slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("Lookup took %v", d)
	}
	// Close must abort the in-flight fetch rather than wait 10s for it.
	begin = time.Now()
	_ = ks.Close()
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
}

func TestNewJWKSKeySetRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "jwks.json", "ftp://auth/jwks.json", "http://", "://x"} {
		if ks, err := authn.NewJWKSKeySet(context.Background(), u, nil, nil); err == nil {
			_ = ks.Close()
			t.Errorf("NewJWKSKeySet(%q) succeeded", u)
		}
	}
}
