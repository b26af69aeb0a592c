package authn_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
)

// clock is a settable time source shared by the verifier and the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }
func newClock(t time.Time) *clock    { return &clock{now: t} }
func cachedVerifier(t *testing.T, ks authn.KeySet, clk *clock, size int) *authn.Verifier {
	t.Helper()
	v, err := authn.NewVerifier(ks, authntest.DefaultIssuer, authntest.DefaultAudience,
		authn.WithCache(size), authn.WithClock(clk.Now), authn.WithLeeway(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCacheHitSkipsVerification(t *testing.T) {
	s := authntest.NewSigner(t)
	ks := &countingKeySet{KeySet: s.KeySet(t)}
	clk := newClock(time.Now())
	v := cachedVerifier(t, ks, clk, 10)
	tok := s.Token(t, "user-1", authntest.Roles("admin"))
	for range 5 {
		c, err := v.Verify(context.Background(), tok)
		if err != nil || c.Subject != "user-1" || !c.HasRole("admin") {
			t.Fatalf("Verify = %v, %v", c, err)
		}
	}
	if n := ks.lookups.Load(); n != 1 {
		t.Errorf("5 verifications of one token did %d key lookups, want 1 (cached)", n)
	}
	// A caller mutating its claims must not change what others get.
	c, _ := v.Verify(context.Background(), tok)
	c.Subject = "mallory"
	if again, _ := v.Verify(context.Background(), tok); again.Subject != "user-1" {
		t.Errorf("cached claims were shared: subject %q", again.Subject)
	}
	// Failures are never cached.
	// One character well inside the signature: the last ones carry padding
	// bits, and "AA" there left the signature unchanged 1 time in 256.
	i := len(tok) - 10
	swap := byte('A')
	if tok[i] == 'A' {
		swap = 'B'
	}
	bad := tok[:i] + string(swap) + tok[i+1:]
	for range 2 {
		if _, err := v.Verify(context.Background(), bad); !errors.Is(err, authn.ErrInvalidToken) {
			t.Fatalf("tampered token: %v", err)
		}
	}
	// A respelling of the cached token (the base64 decoder would skip the
	// line break) misses the cache, whose key is the exact string, and is
	// refused by the full check.
	if _, err := v.Verify(context.Background(), tok+"\n"); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("cached token with a trailing line break: %v", err)
	}
	if v.CacheLen() != 1 {
		t.Errorf("cache holds %d entries, want 1", v.CacheLen())
	}
}

// TestCacheNeverOutlivesExp: a cached token stops verifying at its exp,
// even though an uncached check would still allow the 30s leeway.
func TestCacheNeverOutlivesExp(t *testing.T) {
	s := authntest.NewSigner(t)
	start := time.Now()
	clk := newClock(start)
	v := cachedVerifier(t, s.KeySet(t), clk, 10)
	tok := s.Token(t, "user-1", authntest.ExpiresIn(10*time.Second))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	clk.Add(9 * time.Second)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("before exp: %v", err)
	}
	// Past exp, the cache does not answer; full verification applies (with
	// its leeway), then past the leeway the token is refused.
	clk.Add(2 * time.Second)
	clk.Add(40 * time.Second)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, authn.ErrExpired) {
		t.Fatalf("after exp + leeway: %v, want ErrExpired", err)
	}
}

// TestCacheFlushedWhenKeyRemoved: tokens of a removed key are refused at
// once, though they were cached.
func TestCacheFlushedWhenKeyRemoved(t *testing.T) {
	dir := t.TempDir()
	old, fresh := newEd25519(t), newEd25519(t)
	for kid, k := range map[string]any{"old": old, "fresh": fresh} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, kid+".pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	ks := newDirKeySet(t, dir)
	clk := newClock(time.Now())
	v := cachedVerifier(t, ks, clk, 10)
	oldTok := authntest.NewSignerWithKey(t, "old", old).Token(t, "user-1")
	freshTok := authntest.NewSignerWithKey(t, "fresh", fresh).Token(t, "user-2")
	for _, tok := range []string{oldTok, freshTok} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(dir, "old.pem")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "old key dropped", func() bool { _, err := ks.Lookup(context.Background(), "old"); return err != nil })
	if _, err := v.Verify(context.Background(), oldTok); !errors.Is(err, authn.ErrUnknownKey) {
		t.Fatalf("cached token of a removed key: %v, want ErrUnknownKey", err)
	}
	if _, err := v.Verify(context.Background(), freshTok); err != nil {
		t.Fatalf("token of the remaining key: %v", err)
	}
}

func TestCacheBounded(t *testing.T) {
	s := authntest.NewSigner(t)
	v := cachedVerifier(t, s.KeySet(t), newClock(time.Now()), 3)
	for i := range 10 {
		if _, err := v.Verify(context.Background(), s.Token(t, "user", authntest.Claim("n", i))); err != nil {
			t.Fatal(err)
		}
	}
	if v.CacheLen() != 3 {
		t.Errorf("cache holds %d entries, want its bound 3", v.CacheLen())
	}
	off := cachedVerifier(t, s.KeySet(t), newClock(time.Now()), 0)
	_, _ = off.Verify(context.Background(), s.Token(t, "user"))
	if off.CacheLen() != 0 {
		t.Errorf("disabled cache holds %d entries", off.CacheLen())
	}
}
