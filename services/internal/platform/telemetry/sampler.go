package telemetry

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Sampler keeps logs of things a caller can repeat at will (refused calls,
// failed logins, an outage seen by every request) from growing with the
// flood: at most PerKey lines a second for each kind of line, and at most
// Total a second in all. What it holds back it counts, and the next line
// of the same kind it lets through says how many were left out, so the log
// still tells how big the flood was. Metrics count every event anyway.
//
// Keys should come from a small set (method and code, a result name):
// each key keeps a little state, bounded by MaxKeys.
type Sampler struct {
	perKey rate.Limit
	burst  int
	total  *rate.Limiter

	mu   sync.Mutex
	keys map[string]*sampled // under mu
}

type sampled struct {
	lim        *rate.Limiter
	suppressed uint64
}

// Sampler defaults: a flood of one kind writes 10 lines a second, all
// kinds together at most 50 (well under 100 lines a second).
const (
	SamplePerKey = 10
	SampleTotal  = 50
	maxKeys      = 1024
)

// NewSampler returns a Sampler letting perKey lines a second through per
// key and total in all, each with a burst of twice that.
func NewSampler(perKey, total int) *Sampler {
	return &Sampler{
		perKey: rate.Limit(perKey), burst: 2 * perKey,
		total: rate.NewLimiter(rate.Limit(total), 2*total),
		keys:  map[string]*sampled{},
	}
}

// Allow reports whether a line of kind key may be written now, and, when
// it may, how many lines of that kind were held back since the last one.
func (s *Sampler) Allow(key string) (ok bool, suppressed uint64) {
	if s == nil {
		return true, 0
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, found := s.keys[key]; !found && len(s.keys) >= maxKeys {
		// More kinds than any service has: a bug, or keys built from
		// input. Sample them all as one.
		key = "(other)"
	}
	k, found := s.keys[key]
	if !found {
		k = &sampled{lim: rate.NewLimiter(s.perKey, s.burst)}
		s.keys[key] = k
	}
	if !k.lim.AllowN(now, 1) || !s.total.AllowN(now, 1) {
		k.suppressed++
		return false, 0
	}
	n := k.suppressed
	k.suppressed = 0
	return true, n
}

// Log writes msg at level to log if a line of kind key may be written
// now (see Allow), adding "suppressed" when lines were held back before it.
func (s *Sampler) Log(ctx context.Context, log *slog.Logger, level slog.Level, key, msg string, args ...any) {
	if !log.Enabled(ctx, level) {
		return
	}
	ok, suppressed := s.Allow(key)
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	log.Log(ctx, level, msg, args...)
}
