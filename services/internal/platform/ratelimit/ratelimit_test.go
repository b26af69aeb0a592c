package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database/dbtest"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/ratelimit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// eachStore runs fn on the in-memory store and on the PostgreSQL one.
func eachStore(t *testing.T, fn func(t *testing.T, newStore func() ratelimit.Store)) {
	t.Run("memory", func(t *testing.T) {
		fn(t, func() ratelimit.Store { return ratelimit.NewMemory(1000) })
	})
	t.Run("postgres", func(t *testing.T) {
		db := openPostgres(t)
		fn(t, func() ratelimit.Store {
			s, err := ratelimit.NewSQL(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}

func openPostgres(t *testing.T) *database.DB {
	t.Helper()
	return dbtest.Postgres(t, nil)
}

func TestBucket(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() ratelimit.Store) {
		ctx := context.Background()
		s := newStore()
		r := ratelimit.PerMinute(3) // 3 at once, then one every 20 s
		for i := range 3 {
			if ok, _, err := s.Take(ctx, "k", r, t0); !ok || err != nil {
				t.Fatalf("take %d: %v, %v", i, ok, err)
			}
		}
		ok, retry, err := s.Take(ctx, "k", r, t0)
		if ok || err != nil || retry != 20*time.Second {
			t.Fatalf("4th take = %v, %v, %v; want refused, retry in 20s", ok, retry, err)
		}
		if ok, _, _ := s.Take(ctx, "other", r, t0); !ok {
			t.Fatal("another key was refused")
		}
		if ok, retry, _ := s.Take(ctx, "k", r, t0.Add(15*time.Second)); ok || retry != 5*time.Second {
			t.Fatalf("take after 15s = %v, retry %v; want refused, retry in 5s", ok, retry)
		}
		if ok, _, _ := s.Take(ctx, "k", r, t0.Add(20*time.Second)); !ok {
			t.Fatal("take after a refill was refused")
		}
		// A refund gives one back, never more than the burst.
		if err := s.Refund(ctx, "k", r, t0.Add(20*time.Second)); err != nil {
			t.Fatal(err)
		}
		if ok, _, _ := s.Take(ctx, "k", r, t0.Add(20*time.Second)); !ok {
			t.Fatal("take after a refund was refused")
		}
		for range 10 {
			_ = s.Refund(ctx, "other", r, t0)
		}
		for i := range 3 {
			if ok, _, _ := s.Take(ctx, "other", r, t0); !ok {
				t.Fatalf("take %d of other after refunds refused", i)
			}
		}
		if ok, _, _ := s.Take(ctx, "other", r, t0); ok {
			t.Fatal("ten refunds raised a bucket over its burst of 3")
		}
		// A clock behind the last update drains nothing.
		if ok, _, _ := s.Take(ctx, "k", r, t0.Add(-time.Hour)); ok {
			t.Fatal("a clock an hour behind refilled the bucket")
		}
		// Off rules limit nothing.
		for range 5 {
			if ok, _, _ := s.Take(ctx, "k", ratelimit.PerMinute(0), t0); !ok {
				t.Fatal("an Off rule refused")
			}
		}
		// Marks expire.
		if err := s.Mark(ctx, "m", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		for at, want := range map[time.Time]bool{t0: true, t0.Add(time.Minute): false} {
			if got, err := s.Marked(ctx, "m", at); got != want || err != nil {
				t.Errorf("Marked at %v = %v, %v; want %v", at, got, err, want)
			}
		}
		if got, _ := s.Marked(ctx, "never", t0); got {
			t.Error("an unknown key is marked")
		}
		// Purge forgets what is idle; a purged bucket starts full.
		if err := s.Purge(ctx, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Marked(ctx, "m", t0); got {
			t.Error("a purged mark is still there")
		}
		for range 3 {
			if ok, _, _ := s.Take(ctx, "k", r, t0.Add(time.Hour)); !ok {
				t.Fatal("a purged bucket did not start full")
			}
		}
	})
}

// TestSharedAcrossReplicas: two stores on one PostgreSQL database, as two
// replicas hold them, racing on one key from many goroutines, let exactly
// the burst through.
func TestSharedAcrossReplicas(t *testing.T) {
	db := openPostgres(t)
	a, err := ratelimit.NewSQL(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ratelimit.NewSQL(context.Background(), db) // a second start: the schema exists
	if err != nil {
		t.Fatal(err)
	}
	r := ratelimit.PerMinute(10)
	var granted atomic.Int32
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := ratelimit.Store(a)
			if i%2 == 1 {
				s = b
			}
			ok, _, err := s.Take(context.Background(), "shared", r, t0)
			if err != nil {
				t.Error(err)
			}
			if ok {
				granted.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := granted.Load(); got != 10 {
		t.Fatalf("%d of 40 racing attempts on two replicas got through, want the burst of 10", got)
	}
}

// TestMemoryNeverRefusesANewKey: a flood of distinct keys far beyond the
// store's size evicts the stalest buckets; a real user's first attempt is
// still let through, and the store stays at its size.
func TestMemoryNeverRefusesANewKey(t *testing.T) {
	ctx := context.Background()
	s := ratelimit.NewMemory(1000)
	r := ratelimit.PerMinute(10)
	for i := range 120_000 {
		if ok, _, _ := s.Take(ctx, fmt.Sprintf("spray-%d", i), r, t0); !ok {
			t.Fatalf("sprayed key %d refused", i)
		}
	}
	if ok, _, _ := s.Take(ctx, "the real user", r, t0); !ok {
		t.Fatal("a new key was refused after a flood")
	}
	if n := s.Len(); n != 1000 {
		t.Fatalf("store holds %d buckets, want its size 1000", n)
	}
}

func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:5000":             "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443": "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:80":      "192.0.2.7",
		"[fe80::1%eth0]:80":          "fe80::/64",
		"2001:db8:1:2::9":            "2001:db8:1:2::/64",
		"not an address":             "not an address",
		"[2001:db8:1:3:3:4:5:6]:443": "2001:db8:1:3::/64",
	} {
		if got := ratelimit.AddrKey(fakeAddr(in)); got != want {
			t.Errorf("AddrKey(%q) = %q, want %q", in, got, want)
		}
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

var _ net.Addr = fakeAddr("")

// TestClientsBehindProxies: behind a trusted proxy the client is the
// right-most untrusted hop of x-forwarded-for; an untrusted peer's header
// is ignored (any client can write one), and so is a mangled one.
func TestClientsBehindProxies(t *testing.T) {
	c, err := ratelimit.NewClients([]string{"10.0.0.0/8", " 2001:db8:ffff::/48"})
	if err != nil {
		t.Fatal(err)
	}
	call := func(peerAddr string, xff ...string) context.Context {
		ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: fakeAddr(peerAddr)})
		if len(xff) > 0 {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(append([]string{}, "x-forwarded-for", xff[0])...))
		}
		return ctx
	}
	for _, tt := range []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"no proxy", call("192.0.2.7:5000"), "192.0.2.7"},
		{"untrusted peer's header ignored", call("192.0.2.7:5000", "198.51.100.1"), "192.0.2.7"},
		{"trusted proxy", call("10.1.2.3:5000", "198.51.100.1"), "198.51.100.1"},
		{"spoofed left-most hop", call("10.1.2.3:5000", "203.0.113.9, 198.51.100.1"), "198.51.100.1"},
		{"chain of trusted proxies", call("10.1.2.3:5000", "198.51.100.1, 10.9.9.9"), "198.51.100.1"},
		{"IPv6 client behind a proxy", call("[2001:db8:ffff::1]:443", "2001:db8:1:2::7"), "2001:db8:1:2::/64"},
		{"mangled header", call("10.1.2.3:5000", "not an ip"), "10.1.2.3"},
		{"only trusted hops", call("10.1.2.3:5000", "10.4.4.4"), "10.1.2.3"},
		{"no header", call("10.1.2.3:5000"), "10.1.2.3"},
		{"no peer", context.Background(), "unknown"},
	} {
		if got := c.Key(tt.ctx); got != tt.want {
			t.Errorf("%s: Key = %q, want %q", tt.name, got, tt.want)
		}
	}
	if _, err := ratelimit.NewClients([]string{"10.0.0.0"}); err == nil {
		t.Error("a CIDR without a length was accepted")
	}
	var none *ratelimit.Clients
	if got := none.Key(call("10.1.2.3:5000", "198.51.100.1")); got != "10.1.2.3" {
		t.Errorf("nil Clients trusted a header: %q", got)
	}
}

func TestKeysDoNotCollide(t *testing.T) {
	if ratelimit.Key("a|b", "c") == ratelimit.Key("a", "b|c") || ratelimit.Key("ab", "c") == ratelimit.Key("a", "bc") {
		t.Fatal("two different part lists give one key")
	}
}

// TestAttempts replays the lock-out attacks: wrong guesses from other
// addresses never keep the owner out; one address trying many accounts is
// stopped; guesses spread over many addresses hit the account backstop,
// which the owner's usual address is exempt from.
func TestAttempts(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() ratelimit.Store) {
		ctx := context.Background()
		now := t0
		a := &ratelimit.Attempts{
			Store: newStore(), Scope: "login",
			PerPair: ratelimit.PerMinute(10), PerAddress: ratelimit.PerMinute(100), PerAccount: ratelimit.PerMinute(50),
			Trust: 24 * time.Hour, Now: func() time.Time { return now },
		}
		fail := func(account, addr string) error {
			at, err := a.Begin(ctx, account, addr)
			if err != nil {
				return err
			}
			at.Failed()
			return nil
		}
		succeed := func(account, addr string) error {
			at, err := a.Begin(ctx, account, addr)
			if err != nil {
				return err
			}
			return at.Succeeded(ctx)
		}
		limited := func(err error, limit string) bool {
			var le *ratelimit.LimitedError
			return errors.As(err, &le) && le.Limit == limit && le.RetryAfter > 0
		}

		// The owner logs in from home: that address is now trusted.
		if err := succeed("ada", "home"); err != nil {
			t.Fatal(err)
		}
		// An attacker guesses from one address: 10 failures, then refused.
		for i := range 10 {
			if err := fail("ada", "attacker"); err != nil {
				t.Fatalf("guess %d: %v", i, err)
			}
		}
		if err := fail("ada", "attacker"); !limited(err, "account and address") {
			t.Fatalf("11th guess = %v, want the pair limit", err)
		}
		// The owner is not locked out, from home or from a new address.
		if err := succeed("ada", "home"); err != nil {
			t.Fatalf("owner from home: %v", err)
		}
		if err := succeed("ada", "cafe"); err != nil {
			t.Fatalf("owner from a new address: %v", err)
		}
		// Successes cost nothing: the owner logs in all day.
		for range 50 {
			if err := succeed("ada", "home"); err != nil {
				t.Fatalf("owner's repeated logins: %v", err)
			}
		}
		// Spraying: one address, many accounts, 100 failures a minute.
		for i := range 100 {
			if err := fail(fmt.Sprintf("victim-%d", i), "sprayer"); err != nil {
				t.Fatalf("spray %d: %v", i, err)
			}
		}
		if err := fail("victim-x", "sprayer"); !limited(err, "address") {
			t.Fatalf("101st sprayed guess = %v, want the address limit", err)
		}
		// Distributed guessing on one account: the backstop (50, of which
		// the attacker spent 10 above) stops it...
		for i := range 40 {
			if err := fail("ada", fmt.Sprintf("bot-%d", i)); err != nil {
				t.Fatalf("bot %d: %v", i, err)
			}
		}
		if err := fail("ada", "bot-x"); !limited(err, "account") {
			t.Fatalf("guess past the backstop = %v, want the account limit", err)
		}
		// ...and still the owner logs in from its trusted addresses.
		for _, addr := range []string{"home", "cafe"} {
			if err := succeed("ada", addr); err != nil {
				t.Fatalf("owner from %s during a distributed attack: %v", addr, err)
			}
		}
		// A minute later, everything has refilled.
		now = now.Add(time.Minute)
		if err := fail("ada", "attacker"); err != nil {
			t.Fatalf("a minute later: %v", err)
		}
	})
}
