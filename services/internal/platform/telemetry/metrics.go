package telemetry

import (
	"context"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// Metrics owns a service's Prometheus registry. A registry of its own, not
// the global one, keeps tests isolated and /metrics free of whatever a
// dependency registers globally.
type Metrics struct {
	Registry *prometheus.Registry
	rpcs     *rpcMetrics
}

// NewMetrics registers the standard families: grpc_server_started_total /
// handled_total / msg_*_total / handling_seconds (the names, labels and
// exemplars of go-grpc-middleware's Prometheus provider, see rpcMetrics),
// the first release's grpc_requests_total, and the Go and process
// collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		rpcs:     newRPCMetrics([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}),
	}
	m.Registry.MustRegister(m.rpcs.collectors()...)
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// MustRegister adds domain collectors to the registry.
func (m *Metrics) MustRegister(cs ...prometheus.Collector) { m.Registry.MustRegister(cs...) }

// InitializeMetrics pre-creates the series of every registered method with
// zero values, so rate() and absent() work before the first call.
func (m *Metrics) InitializeMetrics(s *grpc.Server) { m.rpcs.initialize(s) }

// Handler serves the registry in the Prometheus text and OpenMetrics
// formats; OpenMetrics carries the trace-id exemplars.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true, Registry: m.Registry})
}

// UnaryServerInterceptors returns the metric interceptors in the order
// they must run.
func (m *Metrics) UnaryServerInterceptors() []grpc.UnaryServerInterceptor {
	return []grpc.UnaryServerInterceptor{m.rpcs.unary}
}

// StreamServerInterceptors is the streaming twin of UnaryServerInterceptors.
func (m *Metrics) StreamServerInterceptors() []grpc.StreamServerInterceptor {
	return []grpc.StreamServerInterceptor{m.rpcs.stream}
}

// splitMethod turns "/pkg.Service/Method" into ("pkg.Service", "Method").
func splitMethod(full string) (string, string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndex(full, "/"); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}

func exemplarFromContext(ctx context.Context) prometheus.Labels {
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		return prometheus.Labels{"trace_id": sc.TraceID().String()}
	}
	return nil
}
