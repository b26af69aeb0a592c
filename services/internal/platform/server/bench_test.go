package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
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
			srv := bc.build()
			srv.RegisterService(&testServiceDesc, struct{}{})
			l := bufconn.Listen(1 << 20)
			go func() { _ = srv.Serve(l) }()
			defer srv.Stop()
			conn, err := grpc.NewClient("passthrough:///bufconn",
				grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }),
				grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
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
