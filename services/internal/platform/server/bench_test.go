package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/telemetry"
)

// BenchmarkUnaryChain compares one unary call through a bare grpc.Server
// with the same call through the platform's assembly (metrics, call
// logging at info level, recovery, otelgrpc with a 10% sampler), both over
// bufconn, so the ratio is what the shared runtime costs per call:
// `go test -bench UnaryChain -benchmem ./services/internal/platform/server/`.
func BenchmarkUnaryChain(b *testing.B) {
	for _, bc := range []struct {
		name  string
		build func() *grpc.Server
	}{
		{"bare", func() *grpc.Server { return grpc.NewServer() }},
		{"platform", func() *grpc.Server {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.1))))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			s := New(testConfig(), Options{
				Logger:  slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})),
				Metrics: telemetry.NewMetrics(),
				Tracer:  tp,
			})
			return s.GRPC
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			conn := serveTesting(b, bc.build())
			ctx := context.Background()
			req := wrapperspb.Bytes([]byte("x"))
			b.ReportAllocs()
			for b.Loop() {
				if err := conn.Invoke(ctx, "/test.v1.Testing/Sleep", req, new(emptypb.Empty)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// serveTesting serves the test service from srv over bufconn and returns
// a client of it; both stop when tb ends.
func serveTesting(tb testing.TB, srv *grpc.Server) *grpc.ClientConn {
	tb.Helper()
	srv.RegisterService(&testServiceDesc, struct{}{})
	l := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(l) }()
	tb.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestTracingOnlyWhatIsSampled: a sampled call's server span still ends
// with its gRPC status (the events reach otelgrpc), while calls the
// sampler leaves out cost no event handling and export nothing, at a 0%
// sampler as at 100%.
func TestTracingOnlyWhatIsSampled(t *testing.T) {
	for _, tt := range []struct {
		name    string
		sampler sdktrace.Sampler
		spans   int
	}{
		{"always", sdktrace.AlwaysSample(), 1},
		{"never", sdktrace.NeverSample(), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(tt.sampler), sdktrace.WithSyncer(exp))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			s := New(testConfig(), Options{
				Logger:  slog.New(slog.NewJSONHandler(io.Discard, nil)),
				Metrics: telemetry.NewMetrics(),
				Tracer:  tp,
			})
			conn := serveTesting(t, s.GRPC)
			ctx := metadata.AppendToOutgoingContext(context.Background(), "sleep", "bogus-makes-it-return-at-once")
			if err := conn.Invoke(ctx, "/test.v1.Testing/Sleep", wrapperspb.Bytes(nil), new(emptypb.Empty)); err != nil {
				t.Fatal(err)
			}
			// The span ends just after the response is sent.
			deadline := time.Now().Add(5 * time.Second)
			for len(exp.GetSpans()) < tt.spans && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			spans := exp.GetSpans()
			if len(spans) != tt.spans {
				t.Fatalf("%d spans exported, want %d", len(spans), tt.spans)
			}
			for _, sp := range spans {
				// Set from the call's end event, which only a handler
				// that gets the events can know.
				var code string
				for _, a := range sp.Attributes {
					if a.Key == "rpc.response.status_code" {
						code = a.Value.AsString()
					}
				}
				if sp.Name != "test.v1.Testing/Sleep" || code != "OK" {
					t.Errorf("span %q with status code %q, want test.v1.Testing/Sleep with OK: %+v", sp.Name, code, sp.Attributes)
				}
			}
		})
	}
}
