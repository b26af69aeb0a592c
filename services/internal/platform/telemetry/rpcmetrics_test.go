package telemetry_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/telemetry"
)

// TestRPCMetricsMatchTheProvider: the per-call families are what
// go-grpc-middleware's Prometheus provider (which they replace, for its
// per-call cost) and the first release's grpc_requests_total counter
// exposed, series for series: names, help, types, labels, counts and
// exemplars, for unary and streaming calls, OK and failed, sampled or not.
// Dashboards and alerts written against the provider keep working.
func TestRPCMetricsMatchTheProvider(t *testing.T) {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

	ours := telemetry.NewMetrics()
	got := drive(t, ours.UnaryServerInterceptors(), ours.StreamServerInterceptors(), ours.InitializeMetrics, ours.Registry)

	// The reference: the provider, plus grpc_requests_total counted as
	// the first release did.
	reg := prometheus.NewRegistry()
	provider := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(buckets)))
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grpc_requests_total",
		Help: "gRPC requests handled, by service, method and status code (kept from the first release; prefer grpc_server_handled_total).",
	}, []string{"service", "method", "code"})
	reg.MustRegister(provider, requests)
	count := func(full string, err error) {
		full = strings.TrimPrefix(full, "/")
		i := strings.LastIndex(full, "/")
		requests.WithLabelValues(full[:i], full[i+1:], status.Code(err).String()).Inc()
	}
	exemplar := grpcprom.WithExemplarFromContext(func(ctx context.Context) prometheus.Labels {
		if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
			return prometheus.Labels{"trace_id": sc.TraceID().String()}
		}
		return nil
	})
	want := drive(t,
		[]grpc.UnaryServerInterceptor{provider.UnaryServerInterceptor(exemplar),
			func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
				resp, err := handler(ctx, req)
				count(info.FullMethod, err)
				return resp, err
			}},
		[]grpc.StreamServerInterceptor{provider.StreamServerInterceptor(exemplar),
			func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
				err := handler(srv, ss)
				count(info.FullMethod, err)
				return err
			}},
		func(s *grpc.Server) { provider.InitializeMetrics(s) },
		reg)

	if len(want) < 80 {
		t.Fatalf("the reference exposed only %d series; the calls did not run", len(want))
	}
	if missing, extra := diff(want, got), diff(got, want); len(missing)+len(extra) > 0 {
		t.Errorf("series the provider exposes and these do not:\n%s\nseries these expose and the provider does not:\n%s",
			strings.Join(missing, "\n"), strings.Join(extra, "\n"))
	}
}

func diff(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// failing is a unary method whose handler returns a context's error as
// is, the case where the two counters name different codes.
var failing = grpc.ServiceDesc{
	ServiceName: "test.v1.Failing",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Fail", Handler: func(_ any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
		in := new(emptypb.Empty)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(context.Context, any) (any, error) { return nil, context.DeadlineExceeded }
		if icpt == nil {
			return h(ctx, in)
		}
		return icpt(ctx, in, &grpc.UnaryServerInfo{FullMethod: "/test.v1.Failing/Fail"}, h)
	}}},
}

// drive serves the health service and failing through the given
// interceptors, after a sampled-trace interceptor for calls that ask for
// one, makes the same calls each time, and returns the registry's series
// in a comparable form (durations left out: they differ run to run).
func drive(t *testing.T, unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor, initialize func(*grpc.Server), reg *prometheus.Registry) []string {
	t.Helper()
	traced := func(ctx context.Context) context.Context {
		if v := metadata.ValueFromIncomingContext(ctx, "x-sampled"); len(v) == 1 {
			tid, _ := trace.TraceIDFromHex(v[0])
			return trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled}))
		}
		return ctx
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(traced(ctx), req)
		}}, unary...)...),
		grpc.ChainStreamInterceptor(append([]grpc.StreamServerInterceptor{func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, &ctxStream{ServerStream: ss, ctx: traced(ss.Context())})
		}}, stream...)...),
	)
	hs := health.NewServer()
	hs.SetServingStatus("known", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	srv.RegisterService(&failing, struct{}{})
	initialize(srv)
	l := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	sampled := func(id string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "x-sampled", strings.Repeat(id, 32))
	}
	for _, c := range []struct {
		ctx     context.Context
		service string
		code    codes.Code
	}{
		{context.Background(), "known", codes.OK},
		{context.Background(), "known", codes.OK},
		{sampled("a"), "known", codes.OK},
		{context.Background(), "unknown", codes.NotFound},
		{sampled("b"), "unknown", codes.NotFound},
	} {
		if _, err := client.Check(c.ctx, &healthpb.HealthCheckRequest{Service: c.service}); status.Code(err) != c.code {
			t.Fatalf("Check(%s) = %v, want %v", c.service, err, c.code)
		}
	}
	if err := conn.Invoke(sampled("c"), "/test.v1.Failing/Fail", &emptypb.Empty{}, new(emptypb.Empty)); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Fail = %v", err)
	}
	// A stream: one message each way, then the client leaves.
	ctx, cancel := context.WithCancel(sampled("d"))
	w, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "known"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := w.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("Watch after cancel = %v", err)
	}
	conn.Close()
	srv.GracefulStop() // the stream's handler has returned and been counted

	return series(t, reg)
}

// ctxStream gives a handler another context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// series flattens a registry into one line per series.
func series(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "grpc_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			line := fmt.Sprintf("%s %s %q {%s}", f.GetName(), f.GetType(), f.GetHelp(), strings.Join(labels, ","))
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				line += fmt.Sprintf(" %g exemplar=%v", m.GetCounter().GetValue(), exemplarLabels(m.GetCounter().GetExemplar()))
			case dto.MetricType_HISTOGRAM:
				var ex []string
				for _, b := range m.GetHistogram().GetBucket() {
					if e := b.GetExemplar(); e != nil {
						ex = append(ex, exemplarLabels(e))
					}
				}
				var bounds []string
				for _, b := range m.GetHistogram().GetBucket() {
					bounds = append(bounds, fmt.Sprint(b.GetUpperBound()))
				}
				line += fmt.Sprintf(" count=%d buckets=%s exemplars=%v", m.GetHistogram().GetSampleCount(), strings.Join(bounds, ","), ex)
			}
			out = append(out, line)
		}
	}
	return out
}

func exemplarLabels(e *dto.Exemplar) string {
	if e == nil {
		return ""
	}
	var l []string
	for _, p := range e.GetLabel() {
		l = append(l, p.GetName()+"="+p.GetValue())
	}
	return strings.Join(l, ",")
}
