// Package server assembles a production gRPC server the same way for every
// Gatehouse service: standard health (readiness from dependency checks,
// liveness separate), reflection, panic recovery, metrics, tracing, call
// logging, explicit transport limits, an HTTP side port for /metrics, and
// the graceful lifecycle the README's Architecture section describes. It knows nothing of any domain.
package server
