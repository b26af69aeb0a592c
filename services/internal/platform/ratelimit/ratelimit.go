// Package ratelimit holds per-key token buckets (an email, a client
// address, a user id) for the services' attempt limits.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Keyed holds one token bucket per key (an email, a client
// address), forgetting keys idle for longer than a full refill so memory
// stays bounded under a spray of distinct keys.
type Keyed struct {
	limit   rate.Limit
	burst   int
	maxKeys int

	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewKeyed allows perMinute events per key per minute (burst of the same
// size), holding at most maxKeys keys; perMinute <= 0 disables limiting (a
// nil *Keyed, which allows everything).
func NewKeyed(perMinute, maxKeys int) *Keyed {
	if perMinute <= 0 {
		return nil
	}
	return &Keyed{
		limit:   rate.Every(time.Minute / time.Duration(perMinute)),
		burst:   perMinute,
		maxKeys: maxKeys,
		buckets: map[string]*bucket{},
	}
}

// Allow reports whether key may act now. A nil limiter allows everything.
func (l *Keyed) Allow(key string, now time.Time) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.sweep) > time.Minute || len(l.buckets) >= l.maxKeys {
		l.evictIdle(now)
	}
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys {
			// Still full after eviction: a flood of distinct keys. Refuse
			// rather than grow without bound.
			return false
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

// evictIdle drops buckets that have refilled completely; they carry no
// information a fresh bucket would not.
func (l *Keyed) evictIdle(now time.Time) {
	full := time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.seen) > full {
			delete(l.buckets, k)
		}
	}
	l.sweep = now
}
