package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/telemetry"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/tlsfiles"
)

// LivenessService is the health service name that reports only whether the
// process is alive, never its dependencies: a failing database must make a
// pod unready, not restart it.
const LivenessService = "liveness"

// Check is a readiness dependency: the store answers, the keys are loaded.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Options are what a service adds to the shared assembly.
type Options struct {
	Logger  *slog.Logger
	Metrics *telemetry.Metrics
	Tracer  trace.TracerProvider
	// Unary/Stream interceptors run after metrics, logging and recovery,
	// in order (authentication first).
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	// Checks decide readiness; all must pass.
	Checks []Check
	// TLS, if it serves (Config.TLS set), secures the gRPC and HTTP ports.
	TLS *tlsfiles.Files
	// Descriptors, if set, is where reflection looks files and symbols up
	// first, before protoregistry.GlobalFiles (which still answers for
	// grpc.health.v1, reflection itself and anything else it lacks).
	// Descriptors with source info make reflection clients (grpcurl
	// describe) show the contract's comments, which the generated code's
	// own descriptors leave out. Nil: the global registry alone.
	Descriptors protodesc.Resolver
}

// Server is a gRPC server plus its HTTP side port.
type Server struct {
	cfg    Config
	log    *slog.Logger
	checks []Check

	// GRPC is where services register their implementations.
	GRPC    *grpc.Server
	health  *health.Server
	metrics *telemetry.Metrics
	// HTTP serves /metrics (unless METRICS_ADDR moves it); services may
	// add handlers (e.g. a JWKS).
	HTTP *http.ServeMux
	// probes serves health alone on HEALTH_ADDR; nil without one.
	probes *grpc.Server
	// metricsMux serves /metrics on METRICS_ADDR; nil without one.
	metricsMux *http.ServeMux
	tls        *tlsfiles.Files

	watches   *watchRegistry
	forceStop chan struct{}
	forceOnce sync.Once
	// readyGauge and checkGauge export readiness as metrics, so alerts fire
	// on a pod that is not ready even when no call reaches it.
	readyGauge prometheus.Gauge
	checkGauge *prometheus.GaugeVec
}

// New assembles the server. Register services on s.GRPC, then call Run.
func New(cfg Config, o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = telemetry.NewMetrics()
	}
	s := &Server{
		cfg:       cfg,
		log:       o.Logger,
		checks:    o.Checks,
		health:    health.NewServer(),
		metrics:   o.Metrics,
		HTTP:      http.NewServeMux(),
		tls:       o.TLS,
		watches:   newWatchRegistry(),
		forceStop: make(chan struct{}),
	}
	s.readyGauge, s.checkGauge = readinessGauges(o.Metrics, o.Checks)

	recoverOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		s.log.ErrorContext(ctx, "panic in handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})

	calls := callLogger{log: s.log, sampler: telemetry.NewSampler(telemetry.SamplePerKey, telemetry.SampleTotal)}
	unary := append(o.Metrics.UnaryServerInterceptors(),
		calls.unary,
		recovery.UnaryServerInterceptor(recoverOpt),
	)
	stream := append(o.Metrics.StreamServerInterceptors(),
		calls.stream,
		recovery.StreamServerInterceptor(recoverOpt),
	)
	unary = append(unary, o.Unary...)
	stream = append(stream, o.Stream...)

	serverOpts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgBytes),
		// A pool of stream workers keeps goroutines whose stacks have
		// already grown to what a call needs (SQLite's frames are deep); a
		// fresh goroutine per call spent ~15% of GetUser's CPU growing and
		// copying its stack. Calls beyond the pool get a fresh goroutine,
		// so the pool is sized for calls in flight, not for CPUs: with one
		// worker per CPU a one-CPU pod served 15 of 16 calls the slow way.
		grpc.NumStreamWorkers(uint32(max(64, 8*runtime.GOMAXPROCS(0)))),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.MaxHeaderListSize(cfg.MaxHeaderListBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             cfg.KeepaliveMinTime,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			// Closing connections after an age makes clients reconnect
			// and re-resolve, so load spreads to new replicas.
			MaxConnectionAge:      cfg.MaxConnectionAge,
			MaxConnectionAgeGrace: cfg.MaxConnectionGrace,
			MaxConnectionIdle:     cfg.MaxConnectionIdle,
		}),
	}
	if o.TLS.Serving() {
		serverOpts = append(serverOpts, grpc.Creds(o.TLS.ServerCredentials()))
	}
	if o.Tracer != nil {
		serverOpts = append(serverOpts, grpc.StatsHandler(recordingOnly{otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(o.Tracer),
			// otelgrpc's own metrics would duplicate the Prometheus ones.
			otelgrpc.WithMeterProvider(noop.NewMeterProvider()),
			otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool { return !isProbe(info.FullMethodName) }),
		)}))
	}
	s.GRPC = grpc.NewServer(serverOpts...)
	healthpb.RegisterHealthServer(s.GRPC, &watchLimitedHealth{Server: s.health, watches: s.watches})
	if cfg.Reflection {
		registerReflection(s.GRPC, o.Descriptors)
	}
	if cfg.HealthAddr != "" {
		// The same statuses, without TLS and without anything else:
		// the kubelet's gRPC probe speaks plaintext only.
		s.probes = grpc.NewServer(grpc.MaxConcurrentStreams(16), grpc.MaxRecvMsgSize(4096))
		healthpb.RegisterHealthServer(s.probes, &watchLimitedHealth{Server: s.health, watches: s.watches})
	}
	metrics := s.HTTP
	if cfg.MetricsAddr != "" {
		s.metricsMux = http.NewServeMux()
		metrics = s.metricsMux
	}
	metrics.Handle("GET /metrics", o.Metrics.Handler())
	if cfg.Pprof {
		s.HTTP.HandleFunc("/debug/pprof/", pprof.Index)
		s.HTTP.HandleFunc("/debug/pprof/profile", longWrite(pprof.Profile))
		s.HTTP.HandleFunc("/debug/pprof/trace", longWrite(pprof.Trace))
		s.HTTP.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		s.HTTP.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	}
	return s
}

// longWrite lets a pprof handler that runs for ?seconds= (default 30, as
// net/http/pprof) write past the HTTP write timeout: the profile is only
// sent when it ends.
func longWrite(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		secs, err := strconv.Atoi(r.FormValue("seconds"))
		if err != nil || secs <= 0 {
			secs = 30
		}
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Duration(min(secs, 600))*time.Second + 30*time.Second))
		h(w, r)
	}
}

// registerReflection registers server reflection, v1 and v1alpha as
// reflection.Register does, resolving descriptors in descs first, then in
// the global registry.
func registerReflection(s *grpc.Server, descs protodesc.Resolver) {
	if descs == nil {
		reflection.Register(s)
		return
	}
	opts := reflection.ServerOptions{Services: s, DescriptorResolver: fallbackResolver{descs, protoregistry.GlobalFiles}}
	reflectionv1alpha.RegisterServerReflectionServer(s, reflection.NewServer(opts))
	reflectionv1.RegisterServerReflectionServer(s, reflection.NewServerV1(opts))
}

// fallbackResolver answers from first, and from then for what first
// does not have. A file found in first brings its imports from first too,
// so one answer never mixes the two.
type fallbackResolver struct{ first, then protodesc.Resolver }

func (r fallbackResolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if fd, err := r.first.FindFileByPath(path); err == nil {
		return fd, nil
	}
	return r.then.FindFileByPath(path)
}

func (r fallbackResolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.first.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return r.then.FindDescriptorByName(name)
}

// recordingOnly hands a call's events (headers, messages, its end) to the
// tracing handler only when the call's span records. A span the sampler
// left out (nine calls in ten with a 10% ratio sampler) records nothing, and
// its metrics go to a no-op meter, yet otelgrpc built every event's
// attributes anyway. TagRPC, which makes the sampling decision and
// carries the trace context on, still runs for every call.
type recordingOnly struct{ stats.Handler }

func (h recordingOnly) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if trace.SpanFromContext(ctx).IsRecording() {
		h.Handler.HandleRPC(ctx, s)
	}
}

// isProbe reports whether a method is health or reflection traffic, which
// is neither traced nor logged: probes every few seconds would drown the
// signal.
func isProbe(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(fullMethod, "/grpc.reflection.")
}

// Listeners are the sockets a Server serves on. Health and Metrics are
// needed only when HEALTH_ADDR and METRICS_ADDR are set.
type Listeners struct {
	GRPC, HTTP      net.Listener
	Health, Metrics net.Listener
}

// Listen opens the configured addresses; on error it closes what it had
// opened and names the variable whose address failed.
func (c Config) Listen(ctx context.Context) (_ Listeners, err error) {
	var ls Listeners
	var opened []net.Listener
	defer func() {
		if err != nil {
			for _, l := range opened {
				_ = l.Close()
			}
		}
	}()
	var lc net.ListenConfig
	for _, a := range []struct {
		name, addr string
		dst        *net.Listener
	}{
		{"GRPC_ADDR", c.GRPCAddr, &ls.GRPC},
		{"HTTP_ADDR", c.HTTPAddr, &ls.HTTP},
		{"HEALTH_ADDR", c.HealthAddr, &ls.Health},
		{"METRICS_ADDR", c.MetricsAddr, &ls.Metrics},
	} {
		if a.addr == "" {
			continue
		}
		l, err := lc.Listen(ctx, "tcp", a.addr)
		if err != nil {
			return Listeners{}, fmt.Errorf("listen %s %s: %w", a.name, a.addr, err)
		}
		*a.dst = l
		opened = append(opened, l)
	}
	return ls, nil
}

// Run listens on the configured addresses and serves until ctx ends, then
// shuts down gracefully; see Serve.
func (s *Server) Run(ctx context.Context) error {
	ls, err := s.cfg.Listen(ctx)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ls)
}

// Serve serves gRPC, HTTP and, when configured, the plaintext health and
// metrics ports on ls until ctx ends, then: every health status goes
// NOT_SERVING, the server keeps serving for DrainDelay so endpoints leave
// the Service, open health Watch streams are ended, GracefulStop waits for
// in-flight calls up to ShutdownTimeout, then Stop cancels the rest.
// ForceStop skips straight to Stop. Serve returns nil after a clean
// shutdown.
func (s *Server) Serve(ctx context.Context, ls Listeners) error {
	if (s.probes != nil) != (ls.Health != nil) || (s.metricsMux != nil) != (ls.Metrics != nil) {
		return errors.New("server: Serve needs a health and a metrics listener exactly when HEALTH_ADDR and METRICS_ADDR are set")
	}
	s.metrics.InitializeMetrics(s.GRPC)
	s.health.SetServingStatus(LivenessService, healthpb.HealthCheckResponse_SERVING)
	s.setReady(s.checkAll(ctx) == nil)

	httpSrv := s.httpServer(s.HTTP)
	// Past the cap, new connections wait in the kernel's backlog until
	// one closes; the descriptors stay for the gRPC port.
	hl := netutil.LimitListener(ls.HTTP, s.cfg.HTTPMaxConns)
	errc := make(chan error, 4)
	go func() {
		if err := s.GRPC.Serve(ls.GRPC); err != nil {
			errc <- fmt.Errorf("grpc serve: %w", err)
		}
	}()
	go func() {
		var err error
		if s.tls.Serving() {
			httpSrv.TLSConfig = s.tls.ServerConfig(false, "h2", "http/1.1")
			err = httpSrv.ServeTLS(hl, "", "")
		} else {
			err = httpSrv.Serve(hl)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http serve: %w", err)
		}
	}()
	var metricsSrv *http.Server
	if s.metricsMux != nil {
		metricsSrv = s.httpServer(s.metricsMux)
		go func() {
			if err := metricsSrv.Serve(netutil.LimitListener(ls.Metrics, s.cfg.HTTPMaxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics serve: %w", err)
			}
		}()
	}
	if s.probes != nil {
		go func() {
			if err := s.probes.Serve(ls.Health); err != nil {
				errc <- fmt.Errorf("health serve: %w", err)
			}
		}()
	}
	readyCtx, stopReadiness := context.WithCancel(context.WithoutCancel(ctx))
	readinessDone := make(chan struct{})
	go func() {
		defer close(readinessDone)
		s.readinessLoop(readyCtx)
	}()
	attrs := []any{"grpc_addr", ls.GRPC.Addr().String(), "http_addr", ls.HTTP.Addr().String(), "tls", s.tls.Serving()}
	if ls.Health != nil {
		attrs = append(attrs, "health_addr", ls.Health.Addr().String())
	}
	if ls.Metrics != nil {
		attrs = append(attrs, "metrics_addr", ls.Metrics.Addr().String())
	}
	if from := memoryLimitFrom.Load(); from != nil {
		attrs = append(attrs, "gomemlimit", debug.SetMemoryLimit(-1), "gomemlimit_from", *from)
	}
	s.log.Info("serving", attrs...)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	case <-s.forceStop:
	}
	stopReadiness()
	<-readinessDone
	s.shutdown(httpSrv, metricsSrv)
	return serveErr
}

// httpServer is an HTTP server for h with the side ports' timeouts. Its
// own errors (a client failing the TLS handshake, say) are logged at
// debug level: they are the client's to fix, and a scanner must not fill
// the log.
func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(5*time.Second, s.cfg.HTTPReadTimeout),
		ReadTimeout:       s.cfg.HTTPReadTimeout,
		WriteTimeout:      s.cfg.HTTPWriteTimeout,
		IdleTimeout:       s.cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

func (s *Server) shutdown(httpSrv, metricsSrv *http.Server) {
	start := time.Now()
	s.log.Info("shutting down", "drain_delay", s.cfg.DrainDelay.String(), "shutdown_timeout", s.cfg.ShutdownTimeout.String())
	// Shutdown sets every status, liveness included, to NOT_SERVING and
	// ignores later updates.
	s.health.Shutdown()
	s.readyGauge.Set(0)

	select {
	case <-time.After(s.cfg.DrainDelay):
	case <-s.forceStop:
	}
	// Watch streams never end on their own and would hold GracefulStop
	// for the whole timeout (grpc/grpc-go#8776); they have had the
	// NOT_SERVING update by now.
	s.watches.endAll()

	stopped := make(chan struct{})
	go func() {
		s.GRPC.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(s.cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		s.log.Warn("graceful stop timed out; cancelling remaining calls")
		s.GRPC.Stop()
		<-stopped
	case <-s.forceStop:
		s.log.Warn("forced stop; cancelling remaining calls")
		s.GRPC.Stop()
		<-stopped
	}

	if s.probes != nil {
		// Its only streams, Watch, were ended with the others.
		s.probes.Stop()
	}
	httpCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = httpSrv.Shutdown(httpCtx)
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(httpCtx)
	}
	s.log.Info("stopped", "took", time.Since(start).String())
}

// ForceStop ends the server at once, whether or not a graceful shutdown
// is under way (a second SIGTERM).
func (s *Server) ForceStop() {
	s.forceOnce.Do(func() {
		s.log.Warn("stopping at once: a second signal cut the drain short, in-flight calls are cancelled")
		close(s.forceStop)
	})
}

// registeredServices lists the names of the services registered by the
// domain (health and reflection excluded), each of which gets a health
// status equal to overall readiness.
func (s *Server) registeredServices() []string {
	var names []string
	for name := range s.GRPC.GetServiceInfo() {
		if !isProbe("/" + name + "/") {
			names = append(names, name)
		}
	}
	return names
}

func (s *Server) readinessLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.ReadinessInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.setReady(s.checkAll(ctx) == nil)
		}
	}
}

func (s *Server) checkAll(ctx context.Context) error {
	var errs []error
	for _, c := range s.checks {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := c.Fn(cctx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
			s.checkGauge.WithLabelValues(c.Name).Set(0)
		} else {
			s.checkGauge.WithLabelValues(c.Name).Set(1)
		}
	}
	return errors.Join(errs...)
}

func (s *Server) setReady(ready bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ready {
		st = healthpb.HealthCheckResponse_SERVING
	}
	prev, _ := s.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if prev == nil || prev.GetStatus() != st {
		s.log.Info("readiness changed", "status", st.String())
	}
	if ready {
		s.readyGauge.Set(1)
	} else {
		s.readyGauge.Set(0)
	}
	s.health.SetServingStatus("", st)
	for _, name := range s.registeredServices() {
		s.health.SetServingStatus(name, st)
	}
}

// Status reports the readiness status the health service gives for
// service ("" for the whole server); domain HealthCheck RPCs use it so
// they never disagree with grpc.health.v1.
func (s *Server) Status(service string) healthpb.HealthCheckResponse_ServingStatus {
	resp, err := s.health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return healthpb.HealthCheckResponse_SERVICE_UNKNOWN
	}
	return resp.GetStatus()
}

// readinessGauges registers gatehouse_ready and
// gatehouse_readiness_check_ok{check} (0 until the first check runs). A
// registry that already holds them (a second Server on one registry, as
// tests build) lends its own.
func readinessGauges(m *telemetry.Metrics, checks []Check) (prometheus.Gauge, *prometheus.GaugeVec) {
	ready := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gatehouse_ready",
		Help: "1 while the server reports SERVING on grpc.health.v1 (every readiness check passes), 0 while NOT_SERVING, draining included.",
	})
	check := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gatehouse_readiness_check_ok",
		Help: "1 if the readiness check passed at its last run (every READINESS_INTERVAL), 0 if it failed; check names the dependency (database, keys).",
	}, []string{"check"})
	ready = registerOrReuse(m, ready)
	check = registerOrReuse(m, check)
	for _, c := range checks {
		check.WithLabelValues(c.Name)
	}
	return ready, check
}

func registerOrReuse[C prometheus.Collector](m *telemetry.Metrics, c C) C {
	if err := m.Registry.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
