package server

import (
	"errors"
	"math"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// TestTuneGC: DefaultGOGC applies unless GOGC is set.
func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	tests := []struct {
		name     string
		environ  []string
		wantGOGC int
	}{
		{"GOGC unset", []string{"PATH=/bin"}, DefaultGOGC},
		{"GOGC empty", []string{"GOGC="}, DefaultGOGC},
		{"GOGC set: the runtime read it, tuneGC leaves it", []string{"GOGC=100"}, 100},
		{"GOGC off", []string{"GOGC=off"}, 100},
		{"GOGC twice: the runtime reads the first", []string{"GOGC=100", "GOGC="}, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			tuneGC(tt.environ)
			if got := debug.SetGCPercent(100); got != tt.wantGOGC {
				t.Errorf("GOGC = %d, want %d", got, tt.wantGOGC)
			}
		})
	}
}

// TestTuneMemory: MemoryLimitRatio of the container's limit becomes the
// soft limit unless GOMEMLIMIT is set; no readable limit leaves none.
func TestTuneMemory(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	const untouched = int64(12345 << 20)
	limit := func(n uint64, err error) memlimit.Provider {
		return func() (uint64, error) { return n, err }
	}
	tests := []struct {
		name     string
		environ  []string
		limit    memlimit.Provider
		want     int64
		wantFrom string
	}{
		{"256 MiB container", nil, limit(256<<20, nil), 241591910, "90% of the cgroup's memory limit, 268435456 bytes"},
		{"128 MiB container", []string{"GOMEMLIMIT="}, limit(128<<20, nil), 120795955, "90% of the cgroup's memory limit, 134217728 bytes"},
		{"GOMEMLIMIT set: the runtime read it", []string{"GOMEMLIMIT=100MiB"}, limit(256<<20, nil), untouched, "GOMEMLIMIT"},
		{"no limit (cgroup max)", nil, limit(0, memlimit.ErrNoLimit), untouched, "none: the cgroup sets no memory limit"},
		{"no cgroup to read", nil, limit(0, errors.New("no cgroup mount")), untouched, "none: the cgroup's memory limit cannot be read: no cgroup mount"},
		{"a zero limit is none", nil, limit(0, nil), untouched, "none: the cgroup sets no memory limit"},
		{"a limit past int64", nil, limit(math.MaxUint64, nil), untouched, "none: the cgroup's memory limit is past int64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetMemoryLimit(untouched)
			got, from := tuneMemory(tt.environ, tt.limit)
			if now := debug.SetMemoryLimit(-1); now != tt.want || got != tt.want {
				t.Errorf("soft limit %d, tuneMemory said %d, want %d", now, got, tt.want)
			}
			if from != tt.wantFrom {
				t.Errorf("from %q, want %q", from, tt.wantFrom)
			}
		})
	}
}
