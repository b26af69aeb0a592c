package telemetry

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// rpcMetrics are the per-call families: go-grpc-middleware's
// grpc_server_started_total / handled_total / msg_received_total /
// msg_sent_total / handling_seconds, with the same names, help, labels
// and exemplars (its provider is the reference a test holds this to), and
// the first release's grpc_requests_total.
//
// The provider resolves every series from its label values on every call:
// five hashes and lookups per unary call, and a reporter and label slices
// allocated for each, a tenth of a cached GetUser's CPU. Here a method's
// series are resolved once, on its first call (or at InitializeMetrics),
// and a call only adds to them.
type rpcMetrics struct {
	started, handled, received, sent *prometheus.CounterVec
	handling                         *prometheus.HistogramVec
	requests                         *prometheus.CounterVec

	methods sync.Map // full method name -> *methodSeries
}

// numCodes is one past the highest gRPC status code, codes.Unauthenticated.
const numCodes = int(codes.Unauthenticated) + 1

// methodSeries are one method's series, handled ones by status code.
type methodSeries struct {
	started, received, sent prometheus.Counter
	handling                prometheus.Observer
	handled                 [numCodes]prometheus.Counter
	// requests are grpc_requests_total's, made on a code's first use as
	// they always were (handled_total has every code from the start).
	requests        [numCodes]atomic.Value // prometheus.Counter
	requestsVec     *prometheus.CounterVec
	service, method string // grpc_requests_total's labels
	// For a code beyond the defined ones, resolved when it happens.
	handledVec                   *prometheus.CounterVec
	typ, grpcService, grpcMethod string
}

func newRPCMetrics(buckets []float64) *rpcMetrics {
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	withCode := append(labels[:3:3], "grpc_code")
	return &rpcMetrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_started_total",
			Help: "Total number of RPCs started on the server.",
		}, labels),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total",
			Help: "Total number of RPCs completed on the server, regardless of success or failure.",
		}, withCode),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_msg_received_total",
			Help: "Total number of RPC stream messages received on the server.",
		}, labels),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_msg_sent_total",
			Help: "Total number of gRPC stream messages sent by the server.",
		}, labels),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
			Buckets: buckets,
		}, labels),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_requests_total",
			Help: "gRPC requests handled, by service, method and status code (kept from the first release; prefer grpc_server_handled_total).",
		}, []string{"service", "method", "code"}),
	}
}

func (m *rpcMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.started, m.handled, m.received, m.sent, m.handling, m.requests}
}

// series returns fullMethod's series, resolving them on first use. The
// methods are the server's registered ones (gRPC answers any other name
// Unimplemented before an interceptor runs), so the map stays small.
func (m *rpcMetrics) series(fullMethod, typ string) *methodSeries {
	if s, ok := m.methods.Load(fullMethod); ok {
		return s.(*methodSeries)
	}
	service, method := splitMethodName(fullMethod)
	s := &methodSeries{
		started:  m.started.WithLabelValues(typ, service, method),
		received: m.received.WithLabelValues(typ, service, method),
		sent:     m.sent.WithLabelValues(typ, service, method),
		handling: m.handling.WithLabelValues(typ, service, method),
	}
	s.service, s.method = splitMethod(fullMethod)
	s.requestsVec = m.requests
	s.handledVec, s.typ, s.grpcService, s.grpcMethod = m.handled, typ, service, method
	for c := range numCodes {
		s.handled[c] = m.handled.WithLabelValues(typ, service, method, codes.Code(c).String())
	}
	actual, _ := m.methods.LoadOrStore(fullMethod, s)
	return actual.(*methodSeries)
}

// initialize creates every registered method's series with zero values,
// so rate() and absent() work before the first call.
func (m *rpcMetrics) initialize(s *grpc.Server) {
	for service, info := range s.GetServiceInfo() {
		for _, mi := range info.Methods {
			m.series("/"+service+"/"+mi.Name, callType(mi.IsClientStream, mi.IsServerStream))
		}
	}
}

func (m *rpcMetrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	s := m.series(info.FullMethod, "unary")
	ex := exemplarFromContext(ctx)
	add(s.started, ex)
	add(s.received, ex)
	resp, err := handler(ctx, req)
	if err == nil {
		add(s.sent, ex)
	}
	s.done(err, time.Since(start), ex)
	return resp, err
}

func (m *rpcMetrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	typ := callType(info.IsClientStream, info.IsServerStream)
	if typ == "unary" { // a stream that says neither side streams: the provider calls it bidi
		typ = "bidi_stream"
	}
	s := m.series(info.FullMethod, typ)
	ex := exemplarFromContext(ss.Context())
	add(s.started, ex)
	err := handler(srv, &countedStream{ServerStream: ss, s: s, ex: ex})
	s.done(err, time.Since(start), ex)
	return err
}

// done counts a finished call under its code: handled_total by the code
// the client sees (a context error as Canceled or DeadlineExceeded, as
// grpc-go answers it), grpc_requests_total by status.Code, as it always
// has.
func (s *methodSeries) done(err error, took time.Duration, ex prometheus.Labels) {
	st, ok := status.FromError(err)
	if !ok {
		st = status.FromContextError(err)
	}
	if c := st.Code(); int(c) < numCodes {
		add(s.handled[c], ex)
	} else { // a code gRPC does not define, labelled as the provider does
		add(s.handledVec.WithLabelValues(s.typ, s.grpcService, s.grpcMethod, c.String()), ex)
	}
	if ex != nil {
		s.handling.(prometheus.ExemplarObserver).ObserveWithExemplar(took.Seconds(), ex)
	} else {
		s.handling.Observe(took.Seconds())
	}
	code := status.Code(err)
	if int(code) >= numCodes {
		s.requestsVec.WithLabelValues(s.service, s.method, code.String()).Inc()
		return
	}
	c, _ := s.requests[code].Load().(prometheus.Counter)
	if c == nil {
		c = s.requestsVec.WithLabelValues(s.service, s.method, code.String())
		s.requests[code].Store(c)
	}
	c.Inc()
}

// countedStream counts a stream's messages.
type countedStream struct {
	grpc.ServerStream
	s  *methodSeries
	ex prometheus.Labels
}

func (c *countedStream) SendMsg(msg any) error {
	err := c.ServerStream.SendMsg(msg)
	if err == nil {
		add(c.s.sent, c.ex)
	}
	return err
}

func (c *countedStream) RecvMsg(msg any) error {
	err := c.ServerStream.RecvMsg(msg)
	if err == nil {
		add(c.s.received, c.ex)
	}
	return err
}

func add(c prometheus.Counter, ex prometheus.Labels) {
	if ex != nil {
		c.(prometheus.ExemplarAdder).AddWithExemplar(1, ex)
		return
	}
	c.Inc()
}

func callType(clientStream, serverStream bool) string {
	switch {
	case clientStream && !serverStream:
		return "client_stream"
	case !clientStream && serverStream:
		return "server_stream"
	case clientStream && serverStream:
		return "bidi_stream"
	}
	return "unary"
}

// splitMethodName splits "/pkg.Service/Method" as go-grpc-middleware does,
// at the first slash after the leading one.
func splitMethodName(full string) (string, string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.Index(full, "/"); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", "unknown"
}
