package main

import (
	"context"
	"time"

	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
)

// probeReport is the answer to one Login made from inside the cluster. The
// e2e tests use it where only an in-cluster client can tell: with the Auth
// service scaled to zero a port-forward cannot even be opened, while a
// client following the documented policy gets a gRPC status.
type probeReport struct {
	Scenario  string  `json:"scenario"`
	Method    string  `json:"method"`
	Code      string  `json:"code"`
	Message   string  `json:"message,omitempty"`
	LatencyMS float64 `json:"latency_ms"`
}

// runProbe makes one Login with the run's email and password, with the
// same retry policy and deadline as every other call. No warm-up: the
// point is to see what a client gets when the service is not there.
func runProbe(ctx context.Context, cfg config, c *clients) probeReport {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	start := time.Now()
	_, err := c.auth.Login(ctx, &authv1.LoginRequest{Email: cfg.email, Password: cfg.password})
	res := outcome("Login", start, err)
	return probeReport{Scenario: scenarioProbe, Method: res.method, Code: res.code, Message: res.message, LatencyMS: millis(res.latency)}
}
