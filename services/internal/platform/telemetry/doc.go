// Package telemetry wires the three signals every Gatehouse service emits:
// structured logs (log/slog, JSON, with trace ids), Prometheus metrics from a
// per-service registry, and OpenTelemetry traces exported over OTLP.
package telemetry
