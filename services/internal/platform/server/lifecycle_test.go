package server

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func sleepCtx(d time.Duration) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "sleep", d.String())
}

// TestGracefulShutdown follows the lifecycle the README describes: in-flight calls complete,
// health turns NOT_SERVING at once, new calls are refused after the drain,
// and Serve returns nil well within DrainDelay + ShutdownTimeout.
func TestGracefulShutdown(t *testing.T) {
	cfg := testConfig()
	cfg.DrainDelay = 300 * time.Millisecond
	h := start(t, cfg)

	// Warm the connection so the in-flight calls are on the wire when
	// shutdown starts.
	if err := h.call(context.Background(), "Sleep", nil); err != nil {
		t.Fatal(err)
	}
	const inflight = 5
	var wg sync.WaitGroup
	errs := make(chan error, inflight)
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- h.call(sleepCtx(800*time.Millisecond), "Sleep", nil)
		}()
	}
	time.Sleep(100 * time.Millisecond)
	begin := time.Now()
	h.cancel()

	waitFor(t, func() bool { return h.srv.Status("") == healthpb.HealthCheckResponse_NOT_SERVING })
	if got := h.srv.Status(LivenessService); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("liveness during shutdown = %v, want NOT_SERVING (every status goes down)", got)
	}
	if got := testutil.ToFloat64(h.srv.readyGauge); got != 0 {
		t.Errorf("gatehouse_ready while draining = %v, want 0 (it says what health says)", got)
	}
	// During the drain delay the server still answers.
	if time.Since(begin) < cfg.DrainDelay/2 {
		if err := h.call(context.Background(), "Sleep", nil); err != nil {
			t.Errorf("call during drain delay: %v", err)
		}
	}

	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("in-flight call failed: %v", err)
		}
	}
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("Serve() = %v, want nil", err)
		}
		h.done <- nil // for the cleanup
	case <-time.After(cfg.DrainDelay + cfg.ShutdownTimeout):
		t.Fatal("Serve did not return within DRAIN_DELAY + SHUTDOWN_TIMEOUT")
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("shutdown took %v with 800ms calls and 300ms drain", took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := h.call(ctx, "Sleep", nil); status.Code(err) != codes.Unavailable {
		t.Errorf("call after shutdown: code = %v, want Unavailable", status.Code(err))
	}
}

// TestWatchDoesNotHoldShutdown guards against grpc/grpc-go#8776: an open
// health Watch stream must not keep GracefulStop waiting for the timeout.
func TestWatchDoesNotHoldShutdown(t *testing.T) {
	cfg := testConfig()
	cfg.DrainDelay = 100 * time.Millisecond
	cfg.ShutdownTimeout = 10 * time.Second
	h := start(t, cfg)
	stream, err := healthpb.NewHealthClient(h.conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first watch update = %v, %v", resp, err)
	}
	begin := time.Now()
	h.cancel()
	resp, err := stream.Recv()
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch update at shutdown = %v, %v; want NOT_SERVING", resp, err)
	}
	err = <-h.done
	h.done <- err
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("shutdown with an open Watch took %v; the 10s timeout must not be reached", took)
	}
	if err != nil {
		t.Fatalf("Serve() = %v", err)
	}
}

// TestShutdownTimeoutBoundsStuckCalls: a call longer than the timeout is
// cancelled rather than holding the process.
func TestShutdownTimeoutBoundsStuckCalls(t *testing.T) {
	cfg := testConfig()
	cfg.DrainDelay = 0
	cfg.ShutdownTimeout = 300 * time.Millisecond
	h := start(t, cfg)
	if err := h.call(context.Background(), "Sleep", nil); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- h.call(sleepCtx(time.Minute), "Sleep", nil) }()
	time.Sleep(100 * time.Millisecond)
	begin := time.Now()
	h.cancel()
	err := <-h.done
	h.done <- err
	if took := time.Since(begin); took < cfg.ShutdownTimeout || took > 2*time.Second {
		t.Errorf("shutdown took %v, want about SHUTDOWN_TIMEOUT (%v)", took, cfg.ShutdownTimeout)
	}
	if got := status.Code(<-errc); got == codes.OK {
		t.Error("stuck call succeeded; want it cancelled")
	}
}

// TestForceStopSkipsDrain: the second signal ends a long drain at once.
func TestForceStopSkipsDrain(t *testing.T) {
	cfg := testConfig()
	cfg.DrainDelay = time.Minute
	h := start(t, cfg)
	h.cancel()
	waitFor(t, func() bool { return h.srv.Status("") == healthpb.HealthCheckResponse_NOT_SERVING })
	begin := time.Now()
	h.srv.ForceStop()
	err := <-h.done
	h.done <- err
	if took := time.Since(begin); took > 2*time.Second {
		t.Fatalf("ForceStop took %v", took)
	}
}
