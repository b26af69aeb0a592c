package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing holds the tracer provider a service hands to its gRPC stats
// handlers, and the shutdown that flushes pending spans.
type Tracing struct {
	Provider trace.TracerProvider
	shutdown func(context.Context) error
}

// Shutdown flushes and stops the exporter, if any.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// flushTimeout bounds how long shutdown waits for a collector.
const flushTimeout = 5 * time.Second

// Flush exports pending spans and stops the exporter, waiting at most
// flushTimeout, and logs a failure rather than returning it: at shutdown
// there is nothing better to do. Safe on a nil Tracing (start-up failed
// before tracing was set up).
func (t *Tracing) Flush(log *slog.Logger) {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn("flushing traces", "error", err)
	}
}

// TracingOption adjusts SetupTracing, mainly for tests.
type TracingOption func(*tracingOptions)

type tracingOptions struct {
	exporter sdktrace.SpanExporter
	getenv   func(string) string
}

// WithExporter exports spans to e (synchronously, for tests) instead of
// what the environment configures.
func WithExporter(e sdktrace.SpanExporter) TracingOption {
	return func(o *tracingOptions) { o.exporter = e }
}

// WithGetenv reads OTEL_* variables through getenv instead of os.Getenv.
func WithGetenv(getenv func(string) string) TracingOption {
	return func(o *tracingOptions) { o.getenv = getenv }
}

// SetupTracing builds the tracer provider from the standard OTEL_*
// variables. An OTLP/gRPC exporter is created only when an endpoint is set
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or
// OTEL_TRACES_EXPORTER=otlp; without one, spans are still created so trace
// ids reach logs and propagate to callees, but nothing is exported and
// nothing fails. OTEL_SDK_DISABLED=true turns tracing off entirely. The
// sampler follows OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (the SDK
// reads them); the default is parent-based always-on.
//
// It also installs the W3C trace-context propagator globally, which the
// otelgrpc stats handlers use.
func SetupTracing(ctx context.Context, service, version string, opts ...TracingOption) (*Tracing, error) {
	o := tracingOptions{getenv: os.Getenv}
	for _, opt := range opts {
		opt(&o)
	}
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	if strings.EqualFold(o.getenv("OTEL_SDK_DISABLED"), "true") {
		return &Tracing{Provider: noop.NewTracerProvider()}, nil
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(service),
		semconv.ServiceVersion(version),
	))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	// Service name from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES wins.
	if envRes, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, envRes); err == nil {
			res = merged
		}
	}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}

	switch {
	case o.exporter != nil:
		tpOpts = append(tpOpts, sdktrace.WithSyncer(o.exporter))
	case exportConfigured(o.getenv):
		// The exporter reads endpoint, headers, TLS and timeout from the
		// standard OTEL_EXPORTER_OTLP_* variables. It connects lazily, so
		// an unreachable collector never blocks start-up.
		exp, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)
	return &Tracing{Provider: tp, shutdown: tp.Shutdown}, nil
}

func exportConfigured(getenv func(string) string) bool {
	switch strings.ToLower(getenv("OTEL_TRACES_EXPORTER")) {
	case "none":
		return false
	case "otlp":
		return true
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}
