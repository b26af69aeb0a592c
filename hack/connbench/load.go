package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gatehouse-dev/gatehouse/hack/localproc"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
)

// Load is what a steady GetUser load measured.
type Load struct {
	InFlight   int     `json:"in_flight"`
	Conns      int     `json:"conns"`
	Calls      int64   `json:"calls"`
	Errors     int64   `json:"errors"`
	QPS        float64 `json:"qps"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	CPUPerCall float64 `json:"server_cpu_us_per_call"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// OtherCPUs is how many CPUs, on average over the measured window,
	// processes other than this tool and the two services kept busy: a
	// neighbour's benchmark shows here before it skews the figures.
	OtherCPUs float64 `json:"other_processes_cpus"`
	// ServerCPUs and ToolCPUs are the CPUs the User service and this
	// tool kept busy: near 1 the server is saturated (it is pinned to
	// one), near its share the load generator is, and then part of the
	// latency is queueing on this side.
	ServerCPUs float64 `json:"server_cpus"`
	ToolCPUs   float64 `json:"tool_cpus"`
	FirstError string  `json:"first_error,omitempty"`
}

// drive keeps conc authenticated GetUser calls in flight over the
// clients, round robin, for warmup (discarded) then dur, and measures
// throughput, latency, the User service's CPU per call and its peak RSS.
// mid, if set, runs halfway through the measured window.
func (e *env) drive(ctx context.Context, conc int, c *userClients, warmup, dur time.Duration, mid func()) Load {
	pid := e.user.PID()
	actx := e.authCtx(ctx)
	req := &userv1.GetUserRequest{Id: e.adminID}
	var measuring atomic.Bool
	var calls, errs atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, conc)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range conc {
		client := c.clients[w%len(c.clients)]
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				cctx, cancel := context.WithTimeout(actx, 10*time.Second)
				t0 := time.Now()
				_, err := client.GetUser(cctx, req)
				d := time.Since(t0)
				cancel()
				if !measuring.Load() {
					continue
				}
				calls.Add(1)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lat[w] = append(lat[w], d)
			}
		})
	}
	time.Sleep(warmup)
	localproc.ResetPeakRSS(pid)
	ours := []int{os.Getpid(), pid, e.auth.PID()}
	busy0, ours0, tool0 := busyCPUSeconds(), localproc.CPUSeconds(ours), localproc.CPUSeconds(ours[:1])
	cpu0 := localproc.CPUSeconds([]int{pid})
	t0 := time.Now()
	measuring.Store(true)
	if mid != nil {
		time.Sleep(dur / 2)
		mid()
		time.Sleep(dur - time.Since(t0))
	} else {
		time.Sleep(dur)
	}
	measuring.Store(false)
	elapsed := time.Since(t0)
	cpu1 := localproc.CPUSeconds([]int{pid})
	busy1, ours1, tool1 := busyCPUSeconds(), localproc.CPUSeconds(ours), localproc.CPUSeconds(ours[:1])
	peak := localproc.PeakRSSMiB(pid)
	close(stop)
	wg.Wait()

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := Load{InFlight: conc, Conns: len(c.clients), Calls: calls.Load(), Errors: errs.Load(), PeakRSSMiB: peak,
		OtherCPUs:  max(0, (busy1-busy0)-(ours1-ours0)) / elapsed.Seconds(),
		ServerCPUs: (cpu1 - cpu0) / elapsed.Seconds(), ToolCPUs: (tool1 - tool0) / elapsed.Seconds()}
	r.QPS = float64(r.Calls) / elapsed.Seconds()
	if len(all) > 0 {
		r.P50ms = ms(all[len(all)*50/100])
		r.P99ms = ms(all[min(len(all)-1, len(all)*99/100)])
	}
	if r.Calls > 0 {
		r.CPUPerCall = (cpu1 - cpu0) / float64(r.Calls) * 1e6
	}
	if s, ok := firstErr.Load().(string); ok {
		r.FirstError = s
		fmt.Println("  first error:", s)
	}
	return r
}

// withUser runs f against a fresh User service with the steady load's
// connections open (not yet used), and stops the service after. Fresh,
// because a service that has served keeps its heap's high-water mark: new
// connections would first fill the pages earlier garbage left, and the
// difference between two readings would undercount them.
func (e *env) withUser(ctx context.Context, f func(load *userClients) error) error {
	if err := e.startUser(); err != nil {
		return err
	}
	defer e.stopUser()
	load, err := e.dialUsers(ctx, e.o.conns)
	if err != nil {
		return err
	}
	defer load.close()
	return f(load)
}

// IdleRow is one count of idle connections.
type IdleRow struct {
	Idle        int     `json:"idle_connections"`
	OpenSeconds float64 `json:"open_seconds"`
	// Before and With are read before any call, without and with the
	// idle connections.
	Before Mem `json:"memory_before"`
	With   Mem `json:"memory_with"`
	// HeldSeconds is how long the connections had been open when,
	// after the load, each was found still open and silent.
	HeldSeconds float64 `json:"held_seconds"`
	// Load ran beside the idle connections; Without, on the same
	// service right after they closed (none for the 0 row).
	Load    Load  `json:"getuser"`
	Without *Load `json:"getuser_without,omitempty"`

	// With against Before, per idle connection; Load against Without.
	RSSPerConnKiB     float64 `json:"rss_kib_per_conn,omitempty"`
	AnonPerConnKiB    float64 `json:"rss_anon_kib_per_conn,omitempty"`
	GoMemPerConnKiB   float64 `json:"go_heap_stack_kib_per_conn,omitempty"`
	StackPerConnKiB   float64 `json:"go_stack_kib_per_conn,omitempty"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn,omitempty"`
	Ratios            Ratios  `json:"ratio_to_without,omitzero"`
}

// idleLevel reads a fresh service's memory, opens n idle connections,
// reads it again, runs the steady load beside them, checks that every one
// is still open, closes them and runs the load again: the same process
// seconds apart is the fairest comparison on a machine whose speed
// drifts between minutes.
func (e *env) idleLevel(ctx context.Context, n int) (IdleRow, error) {
	step(fmt.Sprintf("%d idle connections, fresh User service", n))
	row := IdleRow{Idle: n}
	err := e.withUser(ctx, func(load *userClients) error {
		time.Sleep(e.o.settle)
		row.Before = e.snapshot(ctx)
		row.With = row.Before
		if n == 0 {
			row.Load = e.drive(ctx, e.o.concurrency, load, e.o.warmup, e.o.duration, nil)
			printLoad(row.Load)
			return nil
		}
		base := row.Before.Sockets
		opened := time.Now()
		idle, err := openIdle(ctx, e.userGRPC, n)
		if err != nil {
			return err
		}
		defer idle.close()
		row.OpenSeconds = time.Since(opened).Seconds()
		if got := e.waitSockets(func(s int) bool { return s >= base+n }, 10*time.Second); got < base+n {
			return fmt.Errorf("the server holds %d sockets, want %d (%d before plus %d idle)", got, base+n, base, n)
		}
		time.Sleep(e.o.settle)
		row.With = e.snapshot(ctx)
		fmt.Printf("  opened in %.1fs; RSS %.1f → %.1f MiB (anon %.1f → %.1f), %d sockets, goroutines %.0f → %.0f\n",
			row.OpenSeconds, row.Before.RSSMiB, row.With.RSSMiB, row.Before.AnonMiB, row.With.AnonMiB, row.With.Sockets,
			row.Before.Goroutines, row.With.Goroutines)
		row.Load = e.drive(ctx, e.o.concurrency, load, e.o.warmup, e.o.duration, nil)
		printLoad(row.Load)
		row.HeldSeconds = time.Since(opened).Seconds()
		if closed, spoke := idle.check(); closed > 0 || spoke > 0 {
			return fmt.Errorf("after %.0f s, the server had closed %d of the %d idle connections and sent something on %d", row.HeldSeconds, closed, n, spoke)
		}
		if time.Since(opened) > maxLevelTime {
			return errLevelTooLong
		}
		held := sockets(e.user.PID())
		idle.close()
		// The server notices the resets and tears the transports down.
		e.waitSockets(func(s int) bool { return s <= held-n }, 10*time.Second)
		without := e.drive(ctx, e.o.concurrency, load, e.o.warmup, e.o.duration, nil)
		fmt.Print("  without them:")
		printLoad(without)
		row.Without = &without
		return nil
	})
	return row, err
}

// StreamRow is one of the stream scenarios.
type StreamRow struct {
	Scenario string `json:"scenario"`
	Conns    int    `json:"conns"`
	Streams  int    `json:"streams"`
	// StreamsPerConn is how many streams each connection carried; the
	// server allows MaxConcurrentStreams.
	StreamsPerConn       int    `json:"streams_per_conn"`
	MaxConcurrentStreams uint32 `json:"server_max_concurrent_streams"`
	// Before is with the connections open and no stream, before any
	// call; With is with the streams open (Watch: before the load;
	// calls in flight: halfway through them).
	Before Mem `json:"memory_before"`
	With   Mem `json:"memory_with"`
	// Load is the GetUser load with the streams; Without, the steady
	// load on the same service without them (Watch: after they ended;
	// calls in flight: just before).
	Load    Load `json:"getuser"`
	Without Load `json:"getuser_without"`

	// With against Before, per stream; Load against Without.
	RSSPerStreamKiB     float64 `json:"rss_kib_per_stream,omitempty"`
	AnonPerStreamKiB    float64 `json:"rss_anon_kib_per_stream,omitempty"`
	GoMemPerStreamKiB   float64 `json:"go_heap_stack_kib_per_stream,omitempty"`
	GoroutinesPerStream float64 `json:"goroutines_per_stream,omitempty"`
	Ratios              Ratios  `json:"ratio_to_without,omitzero"`
}

// watchStreams holds -streams grpc.health.v1 Health/Watch calls open,
// -streams-per-conn to a connection (the server refuses more than
// MAX_CONCURRENT_STREAMS on one), each having had its first SERVING,
// runs the steady GetUser load beside them, ends them and runs it again.
func (e *env) watchStreams(ctx context.Context) (StreamRow, error) {
	o := e.o
	nconn := (o.streams + o.streamsPerConn - 1) / o.streamsPerConn
	row := StreamRow{
		Scenario: fmt.Sprintf("%d Health/Watch streams open", o.streams),
		Conns:    nconn, Streams: o.streams, StreamsPerConn: min(o.streams, o.streamsPerConn), MaxConcurrentStreams: e.maxStreams,
	}
	step(fmt.Sprintf("%d open Health/Watch streams over %d connections, fresh User service", o.streams, nconn))
	err := e.withUser(ctx, func(load *userClients) error {
		var conns []*grpc.ClientConn
		defer func() {
			for _, cc := range conns {
				_ = cc.Close()
			}
		}()
		var health []healthpb.HealthClient
		for range nconn {
			cc, err := grpc.NewClient(e.userGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return err
			}
			conns = append(conns, cc)
			h := healthpb.NewHealthClient(cc)
			// Connected before the first reading, so the difference
			// is the streams' alone.
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err = h.Check(cctx, &healthpb.HealthCheckRequest{})
			cancel()
			if err != nil {
				return err
			}
			health = append(health, h)
		}
		time.Sleep(o.settle)
		row.Before = e.snapshot(ctx)
		// Every stream lives on this context; cancelling it ends them.
		sctx, cancel := context.WithTimeout(ctx, maxLevelTime)
		defer cancel()
		if err := openWatches(sctx, health, o.streams, o.streamsPerConn); err != nil {
			return err
		}
		time.Sleep(o.settle)
		row.With = e.snapshot(ctx)
		fmt.Printf("  RSS %.1f → %.1f MiB (anon %.1f → %.1f), goroutines %.0f → %.0f\n",
			row.Before.RSSMiB, row.With.RSSMiB, row.Before.AnonMiB, row.With.AnonMiB, row.Before.Goroutines, row.With.Goroutines)
		row.Load = e.drive(ctx, o.concurrency, load, o.warmup, o.duration, nil)
		printLoad(row.Load)
		cancel()
		// The handlers return as their streams end; wait for that.
		g := row.With.Goroutines
		for deadline := time.Now().Add(10 * time.Second); g > row.Before.Goroutines+float64(o.concurrency) && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			if v, err := scrape(ctx, e.metrics, e.userHTTP, "go_goroutines"); err == nil {
				g = v[0]
			}
		}
		row.Without = e.drive(ctx, o.concurrency, load, o.warmup, o.duration, nil)
		fmt.Print("  without them:")
		printLoad(row.Without)
		return nil
	})
	return row, err
}

// openWatches starts n Watch calls, perConn to each client in turn, 32 at
// a time, and waits for each one's first answer, which must be SERVING.
// The streams stay open until ctx ends.
func openWatches(ctx context.Context, health []healthpb.HealthClient, n, perConn int) error {
	var next atomic.Int64
	var once sync.Once
	var firstErr error
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range min(n, 32) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || octx.Err() != nil {
					return
				}
				err := func() error {
					// ctx, not octx: the stream outlives the opening.
					st, err := health[i/perConn].Watch(ctx, &healthpb.HealthCheckRequest{})
					if err != nil {
						return err
					}
					r, err := st.Recv()
					if err != nil {
						return err
					}
					if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
						return fmt.Errorf("watch %d: status %s", i, r.GetStatus())
					}
					return nil
				}()
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("opening Watch streams: %w", err); cancel() })
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// unaryInFlight runs the steady load, then keeps -streams GetUser calls
// in flight over -stream-conns connections: concurrent streams that are
// unary calls.
func (e *env) unaryInFlight(ctx context.Context) (StreamRow, error) {
	o := e.o
	row := StreamRow{
		Scenario: fmt.Sprintf("%d GetUser calls in flight", o.streams),
		Conns:    o.streamConns, Streams: o.streams, MaxConcurrentStreams: e.maxStreams,
		StreamsPerConn: (o.streams + o.streamConns - 1) / o.streamConns,
	}
	step(fmt.Sprintf("%d GetUser calls in flight over %d connections, fresh User service", o.streams, o.streamConns))
	err := e.withUser(ctx, func(load *userClients) error {
		many, err := e.dialUsers(ctx, o.streamConns)
		if err != nil {
			return err
		}
		defer many.close()
		time.Sleep(o.settle)
		row.Before = e.snapshot(ctx)
		row.Without = e.drive(ctx, o.concurrency, load, o.warmup, o.duration, nil)
		printLoad(row.Without)
		row.Load = e.drive(ctx, o.streams, many, o.warmup, o.duration, func() { row.With = e.snapshot(ctx) })
		fmt.Printf("  RSS %.1f → %.1f MiB (anon %.1f → %.1f) halfway, goroutines %.0f → %.0f\n",
			row.Before.RSSMiB, row.With.RSSMiB, row.Before.AnonMiB, row.With.AnonMiB, row.Before.Goroutines, row.With.Goroutines)
		printLoad(row.Load)
		return nil
	})
	return row, err
}

func printLoad(l Load) {
	fmt.Printf("  GetUser, %d in flight over %d connections: %.0f calls/s, p50 %.2f ms, p99 %.2f ms, %.0f µs CPU/call, peak RSS %.1f MiB, %d errors; "+
		"CPUs busy: server %.2f, this tool %.2f, other processes %.2f\n",
		l.InFlight, l.Conns, l.QPS, l.P50ms, l.P99ms, l.CPUPerCall, l.PeakRSSMiB, l.Errors, l.ServerCPUs, l.ToolCPUs, l.OtherCPUs)
}

// busyCPUSeconds is the time all CPUs have spent on anything but idling
// since boot (/proc/stat), steal included: another VM's work slows this
// one's as much as a neighbour process's.
func busyCPUSeconds() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, v := range f[1:9] {
		n, _ := strconv.ParseFloat(v, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy / 100 // USER_HZ
}
