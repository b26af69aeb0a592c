package server

import (
	"runtime/debug"
	"strings"
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
// connections; see the README). The chart and the kustomize base set
// GOMEMLIMIT to the container's memory limit, and near it the collector
// runs as often as it must, whatever GOGC says. That limit is soft and
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
