package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestLoggerCarriesTraceIDs(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr, err := SetupTracing(context.Background(), "test", "v0", WithExporter(exp), WithGetenv(func(string) string { return "" }))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	var buf bytes.Buffer
	log := NewLogger(&buf, slog.LevelInfo, "test")

	ctx, span := tr.Provider.Tracer("t").Start(context.Background(), "op")
	log.InfoContext(ctx, "inside")
	span.End()
	log.InfoContext(context.Background(), "outside")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("got %d lines: %s", len(lines), buf.String())
	}
	var inside, outside map[string]any
	if err := json.Unmarshal(lines[0], &inside); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lines[1], &outside); err != nil {
		t.Fatal(err)
	}
	if inside["trace_id"] != span.SpanContext().TraceID().String() || inside["span_id"] != span.SpanContext().SpanID().String() {
		t.Errorf("log inside a span = %v, want trace %s", inside, span.SpanContext().TraceID())
	}
	if _, ok := outside["trace_id"]; ok {
		t.Errorf("log outside a span has a trace_id: %v", outside)
	}
	if inside["service"] != "test" {
		t.Errorf("service attribute = %v", inside["service"])
	}
	if len(exp.GetSpans()) != 1 {
		t.Errorf("exported %d spans, want 1", len(exp.GetSpans()))
	}
}

func TestExportConfigured(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"nothing set: no exporter", nil, false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317"}, true},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://jaeger:4317"}, true},
		{"explicit otlp", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{"explicit none wins", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exportConfigured(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("exportConfigured = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSetupTracingWithoutCollector: an endpoint nobody listens on must not
// fail start-up or shutdown beyond the flush timeout; no endpoint and the
// SDK switched off must work too.
func TestSetupTracingWithoutCollector(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"no endpoint":   {},
		"dead endpoint": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_INSECURE": "true", "OTEL_EXPORTER_OTLP_TIMEOUT": "300"},
		"sdk disabled":  {"OTEL_SDK_DISABLED": "true"},
	} {
		t.Run(name, func(t *testing.T) {
			for k, v := range env {
				t.Setenv(k, v)
			}
			tr, err := SetupTracing(context.Background(), "test", "v0")
			if err != nil {
				t.Fatalf("SetupTracing: %v", err)
			}
			_, span := tr.Provider.Tracer("t").Start(context.Background(), "op")
			span.End()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = tr.Shutdown(ctx) // a dead collector may report an export error; it must return
		})
	}
}
