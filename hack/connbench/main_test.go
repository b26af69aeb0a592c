package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		// Every connection, stream and call the tool opened must be gone
		// when run returns: one left behind would be a server descriptor
		// the next level counted.
		if err := goleak.Find(goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// TestTinyRun builds the real services and runs every scenario small:
// each row must have read memory, carried calls and failed none.
func TestTinyRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the services (about 20 s)")
	}
	out := t.TempDir()
	o := options{
		idle: []int{50}, streams: 50, streamsPerConn: 20, streamConns: 2,
		duration: 500 * time.Millisecond, warmup: 200 * time.Millisecond, settle: 200 * time.Millisecond,
		concurrency: 4, conns: 2, out: out, root: filepath.Join("..", ".."), command: "go test ./hack/connbench",
	}
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}

	checkLoad := func(name string, l Load) {
		t.Helper()
		if l.Calls == 0 || l.QPS <= 0 || l.P99ms <= 0 || l.Errors != 0 {
			t.Errorf("%s: %d calls, %.0f/s, p99 %.2f ms, %d errors (first: %s)", name, l.Calls, l.QPS, l.P99ms, l.Errors, l.FirstError)
		}
	}
	if got := len(rep.Idle); got != 2 {
		t.Fatalf("%d idle rows, want 2 (0 is always measured, and 50)", got)
	}
	for _, row := range rep.Idle {
		name := fmt.Sprintf("%d idle", row.Idle)
		if row.With.RSSMiB <= 0 || row.With.AnonMiB <= 0 || row.With.Goroutines <= 0 {
			t.Errorf("%s: memory not read: %+v", name, row.With)
		}
		if row.With.Sockets < row.Idle {
			t.Errorf("%s: the server held %d sockets", name, row.With.Sockets)
		}
		checkLoad(name, row.Load)
		if row.Idle > 0 {
			if row.Without == nil {
				t.Fatalf("%s: no load without them", name)
			}
			checkLoad(name+", without", *row.Without)
			// grpc-go runs a reader, a writer and a keepalive goroutine
			// per connection.
			if row.GoroutinesPerConn < 1 || row.RSSPerConnKiB == 0 {
				t.Errorf("%s: %.2f goroutines and %.1f KiB per connection", name, row.GoroutinesPerConn, row.RSSPerConnKiB)
			}
		}
	}
	if got := len(rep.Streams); got != 2 {
		t.Fatalf("%d stream rows, want 2", got)
	}
	watch, inFlight := rep.Streams[0], rep.Streams[1]
	if watch.Conns != 3 || watch.Streams != 50 {
		t.Errorf("Watch: %d streams over %d connections, want 50 over 3 (20 a connection)", watch.Streams, watch.Conns)
	}
	if inFlight.Load.InFlight != 50 || inFlight.Conns != 2 {
		t.Errorf("in flight: %d calls over %d connections, want 50 over 2", inFlight.Load.InFlight, inFlight.Conns)
	}
	for _, row := range rep.Streams {
		if row.Before.RSSMiB <= 0 || row.With.RSSMiB <= 0 {
			t.Errorf("%s: memory not read: before %+v, with %+v", row.Scenario, row.Before, row.With)
		}
		checkLoad(row.Scenario, row.Load)
		checkLoad(row.Scenario+", without", row.Without)
	}
	if rep.MaxConcurrentStreams != 256 {
		t.Errorf("the server advertised MAX_CONCURRENT_STREAMS %d, want the default 256", rep.MaxConcurrentStreams)
	}

	md, err := os.ReadFile(filepath.Join(out, "connbench.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| 0 | ", "| 50 | ", "| 50 Health/Watch streams open | 3 | 20 |", "| 50 GetUser calls in flight | 2 | 25 |", "`go test ./hack/connbench`"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("connbench.md lacks %q:\n%s", want, md)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "connbench.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || len(back.Idle) != 2 || back.Commit == "" {
		t.Errorf("connbench.json: %v, %d idle rows, commit %q", err, len(back.Idle), back.Commit)
	}
}

func TestOptions(t *testing.T) {
	for _, tt := range []struct {
		idle string
		want []int
		bad  bool
	}{
		{idle: "1000,0,5000", want: []int{0, 1000, 5000}},
		{idle: "50", want: []int{0, 50}},
		{idle: "10, 10", want: []int{0, 10}},
		{idle: "-1", bad: true},
		{idle: "x", bad: true},
	} {
		counts, err := parseCounts(tt.idle)
		if tt.bad {
			if err == nil {
				t.Errorf("-idle %q accepted", tt.idle)
			}
			continue
		}
		o := options{idle: counts, streams: 1, streamsPerConn: 1, streamConns: 1, concurrency: 1, conns: 1, duration: time.Second}
		if err != nil || o.validate() != nil || !slices.Equal(o.idle, tt.want) {
			t.Errorf("-idle %q: %v (%v), want %v", tt.idle, o.idle, err, tt.want)
		}
	}
	o := options{idle: []int{0}, streams: 1, streamsPerConn: 1, streamConns: 1, concurrency: 1, conns: 1, duration: 4 * time.Minute}
	if o.validate() == nil {
		t.Error("-duration 4m accepted: the server closes connections after 5m at the most")
	}
}
