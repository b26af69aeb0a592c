package telemetry

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestSamplerBoundsAFlood: 20,000 lines of one kind, as fast as a loop
// goes, come out as the burst plus the rate; the next line let through
// says how many were held back, so nothing is lost from the count.
func TestSamplerBoundsAFlood(t *testing.T) {
	s := NewSampler(10, 50)
	start := time.Now()
	allowed, suppressed := 0, uint64(0)
	for range 20_000 {
		ok, n := s.Allow("/auth.v1.AuthService/RefreshToken Unauthenticated")
		if ok {
			allowed++
			suppressed += n
		}
	}
	elapsed := time.Since(start).Seconds()
	if limit := 20 + int(10*elapsed) + 1; allowed > limit {
		t.Fatalf("%d lines of one kind in %.2fs, want at most %d", allowed, elapsed, limit)
	}
	time.Sleep(150 * time.Millisecond) // a token comes back
	ok, n := s.Allow("/auth.v1.AuthService/RefreshToken Unauthenticated")
	if !ok || uint64(allowed)+suppressed+n != 20_000 {
		t.Fatalf("after the flood: ok %v, %d written + %d reported suppressed, want 20000 in all", ok, allowed, suppressed+n)
	}
	// Other kinds share the total: 100 kinds of 1,000 lines each stay
	// under the total's burst plus its rate.
	s = NewSampler(10, 50)
	allowed = 0
	start = time.Now()
	for i := range 100_000 {
		if ok, _ := s.Allow(strings.Repeat("k", i%100+1)); ok {
			allowed++
		}
	}
	if limit := 100 + int(50*time.Since(start).Seconds()) + 1; allowed > limit {
		t.Fatalf("%d lines of 100 kinds, want at most %d", allowed, limit)
	}
	// Keys built from input cannot grow its memory.
	for i := range 10_000 {
		s.Allow(strings.Repeat("x", i))
	}
	if len(s.keys) > maxKeys+1 {
		t.Fatalf("%d keys kept, want at most %d", len(s.keys), maxKeys+1)
	}
}

func TestSamplerLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	s := NewSampler(1, 1)
	for range 5 {
		s.Log(context.Background(), log, slog.LevelInfo, "k", "refused", "result", "invalid")
	}
	if n := strings.Count(buf.String(), `"msg":"refused"`); n != 2 {
		t.Fatalf("%d lines, want the burst of 2:\n%s", n, buf.String())
	}
	var nilSampler *Sampler
	nilSampler.Log(context.Background(), log, slog.LevelInfo, "k", "unsampled")
	if !strings.Contains(buf.String(), "unsampled") {
		t.Fatal("a nil Sampler held a line back")
	}
}
