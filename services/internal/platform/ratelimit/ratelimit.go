package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
)

// Rule is a token bucket: up to Burst attempts at once, then one more
// every Every. The zero Rule (Burst 0) limits nothing.
type Rule struct {
	Burst int
	Every time.Duration
}

// PerMinute allows n attempts at once and n per minute; n <= 0 disables.
func PerMinute(n int) Rule {
	if n <= 0 {
		return Rule{}
	}
	return Rule{Burst: n, Every: time.Minute / time.Duration(n)}
}

// Off reports whether the rule limits nothing.
func (r Rule) Off() bool { return r.Burst <= 0 || r.Every <= 0 }

// Store keeps buckets and marks. Implementations are safe for concurrent
// use.
type Store interface {
	// Take takes one token from key's bucket at now. When there is none it
	// takes nothing and says how long until there is.
	Take(ctx context.Context, key string, r Rule, now time.Time) (ok bool, retryAfter time.Duration, err error)
	// Refund puts back a token taken for an attempt that turned out fine.
	Refund(ctx context.Context, key string, r Rule, now time.Time) error
	// Mark remembers key until the given time (a pair that succeeded, say).
	Mark(ctx context.Context, key string, until time.Time) error
	// Marked reports whether key is remembered at now.
	Marked(ctx context.Context, key string, now time.Time) (bool, error)
	// Purge forgets buckets that have been full for a while and expired
	// marks: ones untouched since before.
	Purge(ctx context.Context, before time.Time) error
}

// bucket is a token count as of a time.
type bucket struct {
	tokens  float64
	updated time.Time
}

// level returns the tokens in b at now under r.
func (b bucket) level(r Rule, now time.Time) float64 {
	elapsed := max(now.Sub(b.updated), 0)
	return math.Min(float64(r.Burst), b.tokens+float64(elapsed)/float64(r.Every))
}

// wait is how long until a bucket at level has a whole token.
func wait(level float64, r Rule) time.Duration {
	return time.Duration(math.Ceil((1 - level) * float64(r.Every)))
}

// Memory is a Store in this process: for one replica (SQLite), or where
// a per-replica limit is enough.
type Memory struct {
	mu      sync.Mutex
	buckets *simplelru.LRU[string, bucket]    // under mu
	marks   *simplelru.LRU[string, time.Time] // under mu
}

// NewMemory returns a Store holding at most maxKeys buckets and as many
// marks; the least recently used go first when it is full.
func NewMemory(maxKeys int) *Memory {
	maxKeys = max(maxKeys, 1)
	b, _ := simplelru.NewLRU[string, bucket](maxKeys, nil)    // errors only for size <= 0
	m, _ := simplelru.NewLRU[string, time.Time](maxKeys, nil) // idem
	return &Memory{buckets: b, marks: m}
}

// Take implements Store.
func (s *Memory) Take(_ context.Context, key string, r Rule, now time.Time) (bool, time.Duration, error) {
	if r.Off() {
		return true, 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets.Get(key)
	level := float64(r.Burst)
	if ok {
		level = b.level(r, now)
	}
	if level < 1 {
		return false, wait(level, r), nil
	}
	s.buckets.Add(key, bucket{tokens: level - 1, updated: now})
	return true, 0, nil
}

// Refund implements Store.
func (s *Memory) Refund(_ context.Context, key string, r Rule, now time.Time) error {
	if r.Off() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.buckets.Peek(key); ok {
		s.buckets.Add(key, bucket{tokens: math.Min(float64(r.Burst), b.level(r, now)+1), updated: now})
	}
	return nil
}

// Mark implements Store.
func (s *Memory) Mark(_ context.Context, key string, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marks.Add(key, until)
	return nil
}

// Marked implements Store.
func (s *Memory) Marked(_ context.Context, key string, now time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.marks.Get(key)
	return ok && now.Before(until), nil
}

// Purge implements Store. The LRU bounds memory anyway; purging keeps
// eviction for floods.
func (s *Memory) Purge(_ context.Context, before time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.buckets.Keys() {
		if b, ok := s.buckets.Peek(k); ok && b.updated.Before(before) {
			s.buckets.Remove(k)
		}
	}
	for _, k := range s.marks.Keys() {
		if until, ok := s.marks.Peek(k); ok && until.Before(before) {
			s.marks.Remove(k)
		}
	}
	return nil
}

// Len reports how many buckets are held (tests, metrics).
func (s *Memory) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buckets.Len()
}

// ForDatabase is the Store a service should use next to db: in memory
// (at most maxKeys buckets) with SQLite, which one replica writes; in the
// database with PostgreSQL, so every replica shares the same buckets.
func ForDatabase(ctx context.Context, db *database.DB, maxKeys int) (Store, error) {
	if db.Dialect() == database.DialectPostgres {
		return NewSQL(ctx, db)
	}
	return NewMemory(maxKeys), nil
}

// Clients tells callers apart by network address for the limits. Behind a
// load balancer, ingress or mesh proxy every caller's TCP peer is the
// proxy, so one attacker's failures would count for everyone behind it:
// for peers in TrustedProxies, the address is taken from the
// x-forwarded-for metadata those proxies add (the right-most entry that
// is not itself a trusted proxy, since anything left of it the client
// could have written). A nil *Clients trusts no proxy.
type Clients struct {
	trusted []netip.Prefix
}

// NewClients trusts the proxies in cidrs ("10.0.0.0/8", "192.0.2.7/32").
func NewClients(cidrs []string) (*Clients, error) {
	c := &Clients{}
	for _, s := range cidrs {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: want a CIDR such as 10.0.0.0/8: %w", s, err)
		}
		c.trusted = append(c.trusted, p.Masked())
	}
	return c, nil
}

func (c *Clients) isTrusted(ip netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

// Key is the rate-limit key of the caller's network address: the IPv4
// address, or the /64 of an IPv6 one, since a single host commonly holds
// a whole /64 and could otherwise rotate through 2^64 keys. "unknown"
// when there is no peer (in-process calls).
func (c *Clients) Key(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	ip, ok := addrIP(p.Addr)
	if !ok {
		return p.Addr.String()
	}
	if c != nil && len(c.trusted) > 0 && c.isTrusted(ip) {
		if fwd, ok := c.forwarded(ctx); ok {
			ip = fwd
		}
	}
	return ipKey(ip)
}

// forwarded is the right-most untrusted address of x-forwarded-for.
func (c *Clients) forwarded(ctx context.Context) (netip.Addr, bool) {
	var hops []string
	for _, v := range metadata.ValueFromIncomingContext(ctx, "x-forwarded-for") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, false // a mangled header: fall back to the peer
		}
		if !c.isTrusted(ip) {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// AddrKey is the key of a net.Addr.
func AddrKey(a net.Addr) string {
	if ip, ok := addrIP(a); ok {
		return ipKey(ip)
	}
	return a.String()
}

func addrIP(a net.Addr) (netip.Addr, bool) {
	s := a.String()
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), true
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip, true
	}
	return netip.Addr{}, false
}

func ipKey(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return ip.String()
	}
	return p.String()
}

// Key joins parts into one bucket key; parts never contain the separator
// in a way that makes two different lists collide, because each is
// length-prefixed.
func Key(parts ...string) string {
	var k string
	for _, p := range parts {
		k += fmt.Sprintf("%d:%s|", len(p), p)
	}
	return k
}

// PurgeLoop purges s every interval until ctx ends, forgetting buckets
// idle for longer than an hour (every PerMinute rule has refilled by then)
// and expired marks. The in-memory store needs it least (its size is
// bounded anyway); the PostgreSQL one needs it to stay small.
func PurgeLoop(ctx context.Context, s Store, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := s.Purge(ctx, now.Add(-time.Hour)); err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "purging rate-limit buckets", "error", err)
			}
		}
	}
}
