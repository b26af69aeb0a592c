package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gatehouse-dev/gatehouse/hack/localproc"
)

type options struct {
	idle []int
	// streams is both how many Health/Watch streams stay open and how
	// many GetUser calls are in flight at once; 0 skips both.
	streams        int
	streamsPerConn int
	streamConns    int
	duration       time.Duration
	warmup         time.Duration
	settle         time.Duration
	concurrency    int
	conns          int
	out            string
	serverEnv      []string
	pin            bool
	// root is the module root the service packages are built from.
	root string
	// command is the command line the report quotes.
	command string
}

func main() {
	o := options{root: ".", command: commandLine(os.Args[1:])}
	flag.Func("idle", "comma-separated counts of idle HTTP/2 connections to hold open, each on a fresh User service (default 0,1000,5000,10000; 0 is always measured, it is the reference)", func(v string) error {
		var err error
		o.idle, err = parseCounts(v)
		return err
	})
	flag.IntVar(&o.streams, "streams", 1000, "Health/Watch streams held open, and GetUser calls in flight at once, in the two stream scenarios (0 skips them)")
	flag.IntVar(&o.streamsPerConn, "streams-per-conn", 200, "Watch streams per connection, under the server's MAX_CONCURRENT_STREAMS (GRPC_MAX_CONCURRENT_STREAMS, 256 by default)")
	flag.IntVar(&o.streamConns, "stream-conns", 8, "connections the in-flight GetUser calls share")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured GetUser load per scenario")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "discarded GetUser load before each measurement, and on each fresh server before its connections open")
	flag.DurationVar(&o.settle, "settle", time.Second, "wait after the connections or streams are open, before the server's memory is read")
	flag.IntVar(&o.concurrency, "concurrency", 16, "GetUser calls in flight in the steady load beside the idle connections and open streams")
	flag.IntVar(&o.conns, "conns", 4, "connections the steady load shares")
	flag.StringVar(&o.out, "out", "bench-results", "directory for connbench.md and connbench.json")
	flag.Func("server-env", "KEY=VALUE added to the User service's environment, to try a setting (repeatable)", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		o.serverEnv = append(o.serverEnv, v)
		return nil
	})
	flag.BoolVar(&o.pin, "pin", true, "pin the servers to the last CPU and this tool to the others, as hack/bench does")
	flag.Parse()
	if o.idle == nil {
		o.idle = []int{0, 1000, 5000, 10000}
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "connbench:", err)
		os.Exit(2)
	}
	if _, err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "connbench:", err)
		os.Exit(1)
	}
}

// maxLevelTime bounds how long one set of idle connections may be held:
// the server closes every connection GRPC_MAX_CONNECTION_AGE (5m, less
// up to 10% jitter: 4m30s at the earliest) after it opened, which would
// measure reconnects instead of idle connections.
const maxLevelTime = 4 * time.Minute

func (o *options) validate() error {
	var errs []error
	if !slices.Contains(o.idle, 0) {
		o.idle = append([]int{0}, o.idle...)
	}
	if o.streams < 0 || o.streamsPerConn < 1 || o.streamConns < 1 || o.concurrency < 1 || o.conns < 1 {
		errs = append(errs, errors.New("-streams must not be negative; -streams-per-conn, -stream-conns, -concurrency and -conns must be positive"))
	}
	if o.duration <= 0 || o.warmup < 0 || o.settle < 0 {
		errs = append(errs, errors.New("-duration must be positive, -warmup and -settle not negative"))
	}
	// Opening 10k connections takes seconds; the rest must leave room.
	if 2*o.warmup+o.settle+o.duration > maxLevelTime-time.Minute {
		errs = append(errs, fmt.Errorf("-duration, -warmup and -settle together must stay well under %s: the server closes connections after GRPC_MAX_CONNECTION_AGE", maxLevelTime))
	}
	return errors.Join(errs...)
}

func parseCounts(v string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("want comma-separated counts of 0 or more, got %q", f)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// commandLine is how to repeat this run from the repository root.
func commandLine(args []string) string {
	parts := []string{"go", "run", "./hack/connbench"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\*?") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// raiseNoFile lifts the soft descriptor limit to the hard one, which the
// servers started afterwards inherit, and says plainly when even the hard
// limit is below what the run needs: each idle connection is a descriptor
// here and another in the User service.
func raiseNoFile(need int) (soft, hard uint64, err error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return 0, 0, fmt.Errorf("raising RLIMIT_NOFILE to %d: %w", lim.Max, err)
		}
	}
	if lim.Max < uint64(need) {
		return lim.Cur, lim.Max, fmt.Errorf("RLIMIT_NOFILE hard limit is %d, below the ~%d descriptors this run needs in this process and in the User service "+
			"(the largest -idle plus the load's connections and a margin): raise the hard limit (ulimit -Hn, LimitNOFILE=, /etc/security/limits.conf) or lower -idle", lim.Max, need)
	}
	return lim.Cur, lim.Max, nil
}

func run(ctx context.Context, o options) (*Report, error) {
	need := slices.Max(o.idle) + o.conns + o.streamConns + (o.streams+o.streamsPerConn-1)/o.streamsPerConn + 64
	soft, hard, err := raiseNoFile(need)
	if err != nil {
		return nil, err
	}
	rep := &Report{
		Date: time.Now().UTC().Format(time.RFC3339), Commit: commit(), Machine: localproc.Machine(), GoVersion: runtime.Version(),
		Command: o.command, NoFileSoft: soft, NoFileHard: hard,
		Duration: o.duration.String(), Warmup: o.warmup.String(), Concurrency: o.concurrency, Conns: o.conns, ServerEnv: o.serverEnv,
	}
	step(fmt.Sprintf("RLIMIT_NOFILE soft %d, hard %d (the run needs ~%d)", soft, hard, need))

	e, err := newEnv(ctx, o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	rep.Pinned = e.pinned
	rep.ToolCPUShare = runtime.NumCPU()
	if e.pinned {
		rep.ToolCPUShare--
	}
	rep.ServerNoFile = e.serverNoFile
	rep.MaxConcurrentStreams = e.maxStreams
	rep.ServerGC = e.gc

	if ms := e.maxStreams; ms > 0 && o.streams > 0 && uint32(min(o.streams, o.streamsPerConn)) > ms {
		// The Watch streams past the limit would wait for a slot that
		// never frees: they stay open.
		return nil, fmt.Errorf("-streams-per-conn %d is over the %d streams the User service allows on a connection (GRPC_MAX_CONCURRENT_STREAMS)", o.streamsPerConn, ms)
	}
	for _, n := range o.idle {
		row, err := e.idleLevel(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("%d idle connections: %w", n, err)
		}
		rep.Idle = append(rep.Idle, row)
	}
	if o.streams > 0 {
		row, err := e.watchStreams(ctx)
		if err != nil {
			return nil, fmt.Errorf("%d open streams: %w", o.streams, err)
		}
		rep.Streams = append(rep.Streams, row)
		if row, err = e.unaryInFlight(ctx); err != nil {
			return nil, fmt.Errorf("%d calls in flight: %w", o.streams, err)
		}
		rep.Streams = append(rep.Streams, row)
	}
	rep.derive()

	md := rep.markdown()
	fmt.Println()
	fmt.Print(md)
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(o.out, "connbench.json"), append(js, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.out, "connbench.md"), []byte(md), 0o644); err != nil {
		return nil, err
	}
	return rep, nil
}

// commit names the checked-out commit, marked when the work tree differs
// from it. GIT_OPTIONAL_LOCKS=0: reading must not rewrite the index
// under someone editing the same checkout.
func commit() string {
	git := func(args ...string) *exec.Cmd {
		cmd := exec.Command("git", args...)
		cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0")
		return cmd
	}
	b, err := git("rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(b))
	if git("diff", "--quiet", "HEAD", "--").Run() != nil {
		c += " (with uncommitted changes)"
	}
	return c
}

func step(s string) { fmt.Printf("connbench: %s (%s)\n", s, time.Now().Format("15:04:05")) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
