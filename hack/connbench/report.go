package main

import (
	"fmt"
	"strings"
)

// Report is everything one run measured.
type Report struct {
	Date      string `json:"date"`
	Commit    string `json:"commit"`
	Machine   string `json:"machine"`
	GoVersion string `json:"go_version"`
	Command   string `json:"command"`
	Pinned    bool   `json:"pinned"`
	// ToolCPUShare is how many CPUs this tool may use: all but the
	// server's when pinned.
	ToolCPUShare int `json:"tool_cpu_share"`
	// This process's RLIMIT_NOFILE after raising the soft limit, and the
	// User service's as /proc/PID/limits shows it.
	NoFileSoft   uint64 `json:"rlimit_nofile_soft"`
	NoFileHard   uint64 `json:"rlimit_nofile_hard"`
	ServerNoFile string `json:"server_rlimit_nofile"`
	// MaxConcurrentStreams is what the User service's SETTINGS frame
	// advertised.
	MaxConcurrentStreams uint32 `json:"server_max_concurrent_streams"`
	// ServerGC is the User service's GOGC and GOMEMLIMIT: peak RSS under
	// load is what it holds plus the garbage GOGC lets pile up.
	ServerGC    string      `json:"server_gc"`
	Duration    string      `json:"duration"`
	Warmup      string      `json:"warmup"`
	Concurrency int         `json:"concurrency"`
	Conns       int         `json:"conns"`
	ServerEnv   []string    `json:"server_env,omitempty"`
	Idle        []IdleRow   `json:"idle"`
	Streams     []StreamRow `json:"streams,omitempty"`
}

// Ratios compare a load with the same load on the same service without
// the idle connections or streams.
type Ratios struct {
	QPS float64 `json:"qps,omitempty"`
	P99 float64 `json:"p99,omitempty"`
	CPU float64 `json:"cpu_per_call,omitempty"`
}

func ratios(l, ref Load) Ratios {
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	return Ratios{QPS: div(l.QPS, ref.QPS), P99: div(l.P99ms, ref.P99ms), CPU: div(l.CPUPerCall, ref.CPUPerCall)}
}

// derive fills the per-connection and per-stream figures and the ratios.
func (r *Report) derive() {
	perKiB := func(a, b float64, n int) float64 { return (a - b) * 1024 / float64(n) }
	for i := range r.Idle {
		row := &r.Idle[i]
		if n := row.Idle; n > 0 {
			row.RSSPerConnKiB = perKiB(row.With.RSSMiB, row.Before.RSSMiB, n)
			row.AnonPerConnKiB = perKiB(row.With.AnonMiB, row.Before.AnonMiB, n)
			row.GoMemPerConnKiB = perKiB(row.With.HeapInuseMiB+row.With.StackMiB, row.Before.HeapInuseMiB+row.Before.StackMiB, n)
			row.StackPerConnKiB = perKiB(row.With.StackMiB, row.Before.StackMiB, n)
			row.GoroutinesPerConn = (row.With.Goroutines - row.Before.Goroutines) / float64(n)
		}
		if row.Without != nil {
			row.Ratios = ratios(row.Load, *row.Without)
		}
	}
	for i := range r.Streams {
		row := &r.Streams[i]
		if n := row.Streams; n > 0 {
			row.RSSPerStreamKiB = perKiB(row.With.RSSMiB, row.Before.RSSMiB, n)
			row.AnonPerStreamKiB = perKiB(row.With.AnonMiB, row.Before.AnonMiB, n)
			row.GoMemPerStreamKiB = perKiB(row.With.HeapInuseMiB+row.With.StackMiB, row.Before.HeapInuseMiB+row.Before.StackMiB, n)
			row.GoroutinesPerStream = (row.With.Goroutines - row.Before.Goroutines) / float64(n)
		}
		row.Ratios = ratios(row.Load, row.Without)
	}
}

func (r *Report) markdown() string {
	var b strings.Builder
	pinned := "no"
	if r.Pinned {
		pinned = "the User service on the last CPU, this tool on the others"
	}
	fmt.Fprintf(&b, "Machine: %s, %s, %s, commit %s. Pinned: %s.\n\n", r.Machine, r.GoVersion, r.Date, r.Commit, pinned)
	fmt.Fprintf(&b, "Command: `%s`", r.Command)
	if len(r.ServerEnv) > 0 {
		fmt.Fprintf(&b, " (User service environment added: `%s`)", strings.Join(r.ServerEnv, " "))
	}
	b.WriteString("\n\n")
	fmt.Fprintf(&b, "Each row is a fresh User service (production settings, SQLite, tokens verified against the Auth service's JWKS, "+
		"10%% of traces exported) with %d connections of its own open for the load. Idle connections complete the HTTP/2 handshake "+
		"(preface, SETTINGS and both ACKs) and then send nothing. The service's memory is read before any call, without and then with "+
		"them, each time right after a garbage collection the tool has it run (`/debug/pprof/heap?gc=1`, the one use of "+
		"`PPROF_ENABLED` here); per connection is the difference divided by their number, Go heap + stacks the service's "+
		"`go_memstats_heap_inuse_bytes` + `go_memstats_stack_inuse_bytes`. Then %d authenticated `GetUser` calls stay in flight "+
		"over the %d connections for %s (after %s discarded) beside the idle ones, and again on the same service once they are "+
		"closed: \"× without\" compares the two. Peak RSS is the highest during the load beside them, with the service's "+
		"garbage collector at %s.\n\n",
		r.Conns, r.Concurrency, r.Conns, r.Duration, r.Warmup, r.ServerGC)
	b.WriteString("| Idle connections | Server sockets | RSS MiB | anon MiB | RSS KiB/conn | anon KiB/conn | Go heap + stacks KiB/conn | goroutines/conn | GetUser QPS | p50 ms | p99 ms | QPS × without | p99 × without | CPU µs/call | Peak RSS MiB | Errors |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	dash := func(v float64, ok bool, format string) string {
		if !ok {
			return "–"
		}
		return fmt.Sprintf(format, v)
	}
	for _, row := range r.Idle {
		some := row.Idle > 0
		fmt.Fprintf(&b, "| %d | %d | %.1f | %.1f | %s | %s | %s | %s | %.0f | %.2f | %.2f | %s | %s | %.0f | %.1f | %d |\n",
			row.Idle, row.With.Sockets, row.With.RSSMiB, row.With.AnonMiB,
			dash(row.RSSPerConnKiB, some, "%.1f"), dash(row.AnonPerConnKiB, some, "%.1f"),
			dash(row.GoMemPerConnKiB, some, "%.1f"), dash(row.GoroutinesPerConn, some, "%.2f"),
			row.Load.QPS, row.Load.P50ms, row.Load.P99ms, dash(row.Ratios.QPS, some, "%.2f"), dash(row.Ratios.P99, some, "%.2f"),
			row.Load.CPUPerCall, row.Load.PeakRSSMiB, row.Load.Errors+withoutErrors(row.Without))
	}
	var held []string
	for _, row := range r.Idle {
		if row.Idle > 0 {
			held = append(held, fmt.Sprintf("%d opened in %.1f s and checked after %.0f s", row.Idle, row.OpenSeconds, row.HeldSeconds))
		}
	}
	if len(held) > 0 {
		fmt.Fprintf(&b, "\nIdle connections: %s; each time, the load over, every one was still open and had received nothing.\n", strings.Join(held, ", "))
	}
	if len(r.Streams) > 0 {
		b.WriteString("\nConcurrent streams, each scenario on a fresh User service prepared the same way. \"Before\" is with the " +
			"scenario's connections open and no stream, before any call; \"with\" is with the Watch streams open (before the load) " +
			"or, for the unary calls, halfway through them (a collection forced there too); per stream is the difference divided " +
			"by the streams. \"× without\" compares the `GetUser` load with the steady one on the same service: after the Watch " +
			"streams ended, or just before the calls in flight.\n\n")
		b.WriteString("| Scenario | Conns | Streams per conn | RSS before MiB | RSS with MiB | anon with MiB | RSS KiB/stream | anon KiB/stream | Go heap + stacks KiB/stream | goroutines/stream | GetUser in flight | QPS | p50 ms | p99 ms | QPS × without | p99 × without | CPU µs/call | Server CPU busy | Peak RSS MiB | Errors |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, row := range r.Streams {
			fmt.Fprintf(&b, "| %s | %d | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f%% | %.1f | %d |\n",
				row.Scenario, row.Conns, row.StreamsPerConn, row.Before.RSSMiB, row.With.RSSMiB, row.With.AnonMiB,
				row.RSSPerStreamKiB, row.AnonPerStreamKiB, row.GoMemPerStreamKiB, row.GoroutinesPerStream,
				row.Load.InFlight, row.Load.QPS, row.Load.P50ms, row.Load.P99ms, row.Ratios.QPS, row.Ratios.P99,
				row.Load.CPUPerCall, 100*row.Load.ServerCPUs, row.Load.PeakRSSMiB, row.Load.Errors+row.Without.Errors)
		}
	}
	var other, worst, tool float64
	var loads int
	for _, l := range r.loads() {
		other += l.OtherCPUs
		worst = max(worst, l.OtherCPUs)
		tool = max(tool, l.ToolCPUs)
		loads++
	}
	if loads > 0 {
		fmt.Fprintf(&b, "\nOther processes on the machine kept %.2f CPUs busy on average during the measured loads (%.2f at most).", other/float64(loads), worst)
		if worst > 0.25 {
			b.WriteString(" **A neighbour competed for the CPUs: the latencies and rates above are not this service's alone; run again on a quiet machine.**")
		}
		fmt.Fprintf(&b, " This tool used %.2f of its %d CPUs at most", tool, r.ToolCPUShare)
		if r.ToolCPUShare > 0 && tool >= 0.85*float64(r.ToolCPUShare) {
			b.WriteString(": the load generator was (near) saturated, so part of the latency at the highest concurrency is queueing in it, not in the service")
		}
		b.WriteString(".\n")
	}
	fmt.Fprintf(&b, "\nThe User service advertised MAX_CONCURRENT_STREAMS %d (`GRPC_MAX_CONCURRENT_STREAMS`): more streams than that on one "+
		"connection wait for a free slot, so they are spread over several connections. Descriptors: this tool %d soft / %d hard, "+
		"the User service %s.\n", r.MaxConcurrentStreams, r.NoFileSoft, r.NoFileHard, r.ServerNoFile)
	b.WriteString("\nWhat the server does with idle connections (defaults of services/internal/platform/server/config.go): " +
		"`GRPC_MAX_CONNECTION_AGE` 5m (±10% jitter) then GOAWAY and, 30 s later (`GRPC_MAX_CONNECTION_AGE_GRACE`), close, " +
		"streams or not; `GRPC_MAX_CONNECTION_IDLE` 15m without a stream, then GOAWAY; the server never pings first before " +
		"2 h without a read (grpc-go's default keepalive time, not set), and lets clients ping every 10 s " +
		"(`GRPC_KEEPALIVE_MIN_TIME`), with or without streams. Each row here holds its connections well inside the first limit.\n")
	return b.String()
}

func withoutErrors(l *Load) int64 {
	if l == nil {
		return 0
	}
	return l.Errors
}

// loads are every measured GetUser load of the run.
func (r *Report) loads() []Load {
	var out []Load
	for _, row := range r.Idle {
		out = append(out, row.Load)
		if row.Without != nil {
			out = append(out, *row.Without)
		}
	}
	for _, row := range r.Streams {
		out = append(out, row.Load, row.Without)
	}
	return out
}
