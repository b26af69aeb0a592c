package server

import (
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strings"
	"sync/atomic"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// DefaultGOGC is the garbage collector's target when GOGC is not set.
//
// Go's default, 100, collects each time the heap doubles. The services'
// live heap is small but never empty (the password-strength estimator's
// dictionaries alone are ~7 MiB of pointers the collector scans on every
// cycle) while a cached GetUser allocates ~8 KiB, so at 100 a sixth of a
// busy User service's CPU went to collecting (mark workers and assists in
// make bench's profile; 5% at 200). At 200 the collector runs half as
// often, for a heap up to three times the live one: ~10 MiB more at peak
// for GetUser, more where the live heap is large (thousands of idle
// connections; see the README). Near the soft memory limit (tuneMemory)
// the collector runs as often as it must, whatever GOGC says. That limit
// counts only the Go runtime's memory, so it bounds the trade, not the
// pod: the README's connection figures show where it is reached.
const DefaultGOGC = 200

// tuneGC applies DefaultGOGC unless GOGC is set (the runtime has read it
// then). The result is on /metrics as go_gc_gogc_percent.
func tuneGC(environ []string) {
	if lookupEnv(environ, "GOGC") == "" {
		debug.SetGCPercent(DefaultGOGC)
	}
}

// MemoryLimitRatio is the share of the container's memory limit that
// becomes the Go runtime's soft limit (GOMEMLIMIT) when GOMEMLIMIT is not
// set. Not all of it: the limit counts only the Go runtime's own memory,
// while the container's also holds the binary's pages, SQLite's memory
// map and the kernel's socket buffers. With 10,000 idle connections and
// GOMEMLIMIT at the whole 256 MiB limit the User service peaked at
// 266 MiB (make bench-conns), past the limit that gets a pod killed.
const MemoryLimitRatio = 0.9

// tuneMemory sets the runtime's soft memory limit to MemoryLimitRatio of
// the memory limit limit reports (the container's cgroup, in production)
// unless GOMEMLIMIT is set, and returns the limit in force and where it
// came from. No limit, or none that can be read (no cgroup, another OS),
// leaves the runtime's default, no limit: the process is not in a
// container that would kill it, or cannot tell, and says which. The limit
// is on /metrics as go_gc_gomemlimit_bytes; where it came from, on the
// "serving" log line.
func tuneMemory(environ []string, limit memlimit.Provider) (int64, string) {
	if lookupEnv(environ, "GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	}
	n, err := limit()
	switch {
	case errors.Is(err, memlimit.ErrNoLimit) || (err == nil && n == 0):
		return debug.SetMemoryLimit(-1), "none: the cgroup sets no memory limit"
	case err != nil:
		return debug.SetMemoryLimit(-1), "none: the cgroup's memory limit cannot be read: " + err.Error()
	}
	soft := float64(n) * MemoryLimitRatio
	if soft >= math.MaxInt64 {
		return debug.SetMemoryLimit(-1), "none: the cgroup's memory limit is past int64"
	}
	debug.SetMemoryLimit(int64(soft))
	return int64(soft), fmt.Sprintf("%.0f%% of the cgroup's memory limit, %d bytes", MemoryLimitRatio*100, n)
}

// memoryLimitFrom is where the soft memory limit came from (tuneMemory),
// for the "serving" log line: stored once before the service is built;
// the limit, like the runtime it is set in, is the process's.
var memoryLimitFrom atomic.Pointer[string]

// lookupEnv returns the first value of key in environ, "" if unset: the
// one the Go runtime reads.
func lookupEnv(environ []string, key string) string {
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			return val
		}
	}
	return ""
}
