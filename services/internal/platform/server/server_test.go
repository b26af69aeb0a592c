package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/telemetry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testService is a hand-written service so the platform tests need no
// generated code: Sleep sleeps for the duration in its "sleep" metadata,
// Panic panics, Echo returns its bytes.
var testServiceDesc = grpc.ServiceDesc{
	ServiceName: "test.v1.Testing",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Sleep", Handler: unaryHandler("/test.v1.Testing/Sleep", func(ctx context.Context) error {
			md, _ := metadata.FromIncomingContext(ctx)
			d, _ := time.ParseDuration(first(md.Get("sleep")))
			select {
			case <-time.After(d):
				return nil
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			}
		})},
		{MethodName: "Panic", Handler: unaryHandler("/test.v1.Testing/Panic", func(context.Context) error { panic("boom") })},
	},
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func unaryHandler(full string, fn func(context.Context) error) grpc.MethodHandler {
	return func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.BytesValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(ctx context.Context, _ any) (any, error) { return &emptypb.Empty{}, fn(ctx) }
		if ic == nil {
			return h(ctx, in)
		}
		return ic(ctx, in, &grpc.UnaryServerInfo{FullMethod: full}, h)
	}
}

type harness struct {
	srv      *Server
	conn     *grpc.ClientConn
	httpAddr string
	ls       Listeners
	metrics  *telemetry.Metrics
	cancel   context.CancelFunc
	done     chan error
}

func testConfig() Config {
	return Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Reflection: true,
		DrainDelay: 200 * time.Millisecond, ShutdownTimeout: 5 * time.Second, ReadinessInterval: 50 * time.Millisecond,
		MaxRecvMsgBytes: 64 << 10, MaxConcurrentStreams: 100, MaxHeaderListBytes: 16 << 10,
		MaxConnectionAge: time.Minute, MaxConnectionGrace: time.Minute, MaxConnectionIdle: time.Minute, KeepaliveMinTime: 10 * time.Second,
		HTTPReadTimeout: 10 * time.Second, HTTPWriteTimeout: 30 * time.Second, HTTPIdleTimeout: time.Minute, HTTPMaxConns: 64,
	}
}

func start(t *testing.T, cfg Config, checks ...Check) *harness {
	t.Helper()
	return startWith(t, cfg, Options{}, checks...)
}

// startWith serves a test service on loopback ports with o's additions.
func startWith(t *testing.T, cfg Config, o Options, checks ...Check) *harness {
	t.Helper()
	h := &harness{metrics: telemetry.NewMetrics(), done: make(chan error, 1)}
	o.Logger, o.Metrics, o.Checks = slog.New(slog.NewTextHandler(io.Discard, nil)), h.metrics, checks
	h.srv = New(cfg, o)
	h.srv.GRPC.RegisterService(&testServiceDesc, struct{}{})
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	ls, err := cfg.Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h.ls = ls
	h.httpAddr = ls.HTTP.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.srv.Serve(ctx, ls) }()
	creds := insecure.NewCredentials()
	if o.TLS.Serving() {
		creds = o.TLS.ClientCredentials()
	}
	h.conn, err = grpc.NewClient(ls.GRPC.Addr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.cancel()
		h.srv.ForceStop()
		<-h.done
		_ = h.conn.Close()
	})
	return h
}

func (h *harness) health(t *testing.T, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := healthpb.NewHealthClient(h.conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("health %q: %v", service, err)
	}
	return resp.GetStatus()
}

func (h *harness) call(ctx context.Context, method string, payload []byte) error {
	return h.conn.Invoke(ctx, "/test.v1.Testing/"+method, wrapperspb.Bytes(payload), new(emptypb.Empty))
}

func TestHealthReflectsChecks(t *testing.T) {
	var failing = make(chan bool, 1)
	failing <- false
	check := Check{Name: "store", Fn: func(context.Context) error {
		f := <-failing
		failing <- f
		if f {
			return errors.New("down")
		}
		return nil
	}}
	h := start(t, testConfig(), check)
	// The metrics say what health says, for alerts on pods no call reaches.
	gauges := func() (ready, store float64) {
		return testutil.ToFloat64(h.srv.readyGauge), testutil.ToFloat64(h.srv.checkGauge.WithLabelValues("store"))
	}
	for _, svc := range []string{"", "test.v1.Testing", LivenessService} {
		if got := h.health(t, svc); got != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health(%q) = %v, want SERVING", svc, got)
		}
	}
	if r, c := gauges(); r != 1 || c != 1 {
		t.Errorf("while SERVING: gatehouse_ready=%v, gatehouse_readiness_check_ok{check=store}=%v; want 1, 1", r, c)
	}
	<-failing
	failing <- true
	waitFor(t, func() bool { return h.health(t, "") == healthpb.HealthCheckResponse_NOT_SERVING })
	if r, c := gauges(); r != 0 || c != 0 {
		t.Errorf("while the store is down: gatehouse_ready=%v, gatehouse_readiness_check_ok{check=store}=%v; want 0, 0", r, c)
	}
	if got := h.health(t, "test.v1.Testing"); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("service health = %v while dependency down, want NOT_SERVING", got)
	}
	if got := h.health(t, LivenessService); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("liveness = %v while dependency down, want SERVING (a failing store must not restart the pod)", got)
	}
	if got := h.srv.Status(""); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("Status(\"\") = %v, want NOT_SERVING", got)
	}
	<-failing
	failing <- false
	waitFor(t, func() bool { return h.health(t, "") == healthpb.HealthCheckResponse_SERVING })
}

func TestReflection(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		t.Run(map[bool]string{true: "on", false: "off"}[enabled], func(t *testing.T) {
			cfg := testConfig()
			cfg.Reflection = enabled
			h := start(t, cfg)
			stream, err := reflectionpb.NewServerReflectionClient(h.conn).ServerReflectionInfo(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// With reflection off the server may end the stream before
			// Send completes (io.EOF); Recv then carries the status.
			if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && (enabled || !errors.Is(err, io.EOF)) {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if !enabled {
				if status.Code(err) != codes.Unimplemented {
					t.Fatalf("reflection off: err = %v, want Unimplemented", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range resp.GetListServicesResponse().GetService() {
				names = append(names, s.GetName())
			}
			if !strings.Contains(strings.Join(names, ","), "test.v1.Testing") {
				t.Errorf("reflection lists %v, want test.v1.Testing", names)
			}
			_ = stream.CloseSend()
		})
	}
}

func TestPanicBecomesInternalAndServerKeepsServing(t *testing.T) {
	h := start(t, testConfig())
	err := h.call(context.Background(), "Panic", nil)
	if status.Code(err) != codes.Internal {
		t.Fatalf("panic: code = %v, want Internal", status.Code(err))
	}
	if strings.Contains(status.Convert(err).Message(), "boom") {
		t.Errorf("panic value leaked to client: %q", status.Convert(err).Message())
	}
	if err := h.call(context.Background(), "Sleep", nil); err != nil {
		t.Fatalf("after panic: %v", err)
	}
}

func TestOversizedMessageRejected(t *testing.T) {
	h := start(t, testConfig())
	err := h.call(context.Background(), "Sleep", make([]byte, 128<<10))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("128 KiB message with 64 KiB limit: code = %v, want ResourceExhausted", status.Code(err))
	}
	if err := h.call(context.Background(), "Sleep", make([]byte, 1<<10)); err != nil {
		t.Fatalf("small message after oversized: %v", err)
	}
}

func TestHugeMetadataRejected(t *testing.T) {
	h := start(t, testConfig())
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-junk", strings.Repeat("a", 64<<10))
	if err := h.call(ctx, "Sleep", nil); err == nil {
		t.Fatal("64 KiB of metadata with a 16 KiB limit was accepted")
	}
	if err := h.call(context.Background(), "Sleep", nil); err != nil {
		t.Fatalf("normal call after huge metadata: %v", err)
	}
}

func TestMetricsExposed(t *testing.T) {
	h := start(t, testConfig())
	_ = h.call(context.Background(), "Sleep", nil)
	_ = h.call(context.Background(), "Panic", nil)
	// Health probes are not application traffic for the legacy counter
	// either way, but the standard family counts every method.
	want := `
# HELP grpc_requests_total gRPC requests handled, by service, method and status code (kept from the first release; prefer grpc_server_handled_total).
# TYPE grpc_requests_total counter
grpc_requests_total{code="Internal",method="Panic",service="test.v1.Testing"} 1
grpc_requests_total{code="OK",method="Sleep",service="test.v1.Testing"} 1
`
	if err := testutil.GatherAndCompare(h.metrics.Registry, strings.NewReader(want), "grpc_requests_total"); err != nil {
		t.Error(err)
	}
	if n := counterValue(t, h.metrics.Registry, "grpc_server_handled_total", map[string]string{"grpc_method": "Sleep", "grpc_code": "OK"}); n != 1 {
		t.Errorf("grpc_server_handled_total{Sleep,OK} = %v, want 1", n)
	}
	resp, err := http.Get("http://" + h.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, family := range []string{"grpc_server_handled_total", "grpc_server_handling_seconds_bucket", "grpc_requests_total", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(string(body), family) {
			t.Errorf("/metrics lacks %s", family)
		}
	}
}

// TestHTTPPortHoldsNoConnectionForever: an idle keep-alive connection is
// closed after HTTP_IDLE_TIMEOUT, a body sent a byte at a time after
// HTTP_READ_TIMEOUT, and past HTTP_MAX_CONNECTIONS the port accepts no
// more (they wait) while the gRPC port keeps answering. Before, idle and
// slow connections were held for ever and had no cap, and 239 of them made
// gRPC fail to accept under a 256-descriptor limit.
func TestHTTPPortHoldsNoConnectionForever(t *testing.T) {
	cfg := testConfig()
	cfg.HTTPIdleTimeout, cfg.HTTPReadTimeout, cfg.HTTPMaxConns = 300*time.Millisecond, 300*time.Millisecond, 4
	h := start(t, cfg)
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", h.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	closedWithin := func(c net.Conn, d time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(d))
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				var ne net.Error
				return !errors.As(err, &ne) || !ne.Timeout()
			}
		}
	}

	idle := dial()
	if _, err := io.WriteString(idle, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if !closedWithin(idle, 3*time.Second) {
		t.Error("an idle keep-alive connection is still open after 3s")
	}
	slow := dial()
	if _, err := io.WriteString(slow, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx"); err != nil {
		t.Fatal(err)
	}
	if !closedWithin(slow, 3*time.Second) {
		t.Error("a body sent a byte at a time is still being read after 3s")
	}

	// Four silent connections fill the port; a fifth is not served...
	cfg.HTTPIdleTimeout, cfg.HTTPReadTimeout = time.Minute, time.Minute
	h = start(t, cfg)
	for range 4 {
		dial()
	}
	client := &http.Client{Timeout: 300 * time.Millisecond}
	if resp, err := client.Get("http://" + h.httpAddr + "/metrics"); err == nil {
		_ = resp.Body.Close()
		t.Error("a fifth connection was served past HTTP_MAX_CONNECTIONS=4")
	}
	// ...while gRPC answers.
	if got := h.health(t, ""); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health with the HTTP port full = %v", got)
	}
}

// counterValue reads one series from the registry, so the test does not
// depend on middleware internals.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
