package server

import (
	"math"
	"runtime/debug"
	"strings"

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
// unless GOMEMLIMIT is set, and returns the limit in force. No limit, or
// none that can be read (no cgroup, another OS), leaves the runtime's
// default, no limit: the process is not in a container that would kill
// it. The result is on /metrics as go_gc_gomemlimit_bytes.
func tuneMemory(environ []string, limit memlimit.Provider) int64 {
	if lookupEnv(environ, "GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1)
	}
	n, err := limit()
	if err != nil || n == 0 {
		return debug.SetMemoryLimit(-1)
	}
	soft := float64(n) * MemoryLimitRatio
	if soft >= math.MaxInt64 {
		return debug.SetMemoryLimit(-1)
	}
	debug.SetMemoryLimit(int64(soft))
	return int64(soft)
}

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
