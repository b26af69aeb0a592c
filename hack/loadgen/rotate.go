package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
)

// rotateReport is what refresh-rate measured: how many rotations the Auth
// service made per second for -clients callers each refreshing its own
// session back to back, and their latency. Like every scenario it
// reports and never asserts.
type rotateReport struct {
	Scenario string `json:"scenario"`
	Clients  int    `json:"clients"`
	// Refreshes answered OK, and the others by code.
	OK          int            `json:"ok"`
	Codes       map[string]int `json:"codes"`
	PerSecond   float64        `json:"per_second"`
	P50ms       float64        `json:"p50_ms"`
	P99ms       float64        `json:"p99_ms"`
	FirstErrors []string       `json:"first_errors"`
	DurationS   float64        `json:"duration_s"`
	LoginError  string         `json:"login_error,omitempty"`
}

// runRotate logs each client in, one at a time (logins at once to one
// account from one address would meet the attempt limits, which count an
// attempt until it succeeds), then has every client refresh its own
// family with the token the last refresh returned, for -duration.
func runRotate(ctx context.Context, cfg config, c *clients, stderr io.Writer) rotateReport {
	r := rotateReport{Scenario: scenarioRotate, Clients: cfg.clients, Codes: map[string]int{}, FirstErrors: []string{}}
	tokens := make([]string, cfg.clients)
	for i := range tokens {
		token, res := logIn(ctx, cfg, c)
		if !res.ok() {
			r.LoginError = res.code + ": " + res.message
			return r
		}
		tokens[i] = token
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	stop := time.Now().Add(cfg.duration)
	start := time.Now()
	for i := range tokens {
		wg.Go(func() {
			var mine []time.Duration
			defer func() {
				mu.Lock()
				latencies = append(latencies, mine...)
				mu.Unlock()
			}()
			for time.Now().Before(stop) && ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.timeout)
				t0 := time.Now()
				resp, err := c.auth.RefreshToken(cctx, &authv1.RefreshTokenRequest{RefreshToken: tokens[i]})
				cancel()
				res := outcome(methodRefresh, t0, err)
				if !res.ok() {
					mu.Lock()
					r.Codes[res.code]++
					if len(r.FirstErrors) < maxFirstErrors {
						r.FirstErrors = append(r.FirstErrors, fmt.Sprintf("%s %s %s", res.at.UTC().Format(time.RFC3339Nano), res.code, res.message))
					}
					mu.Unlock()
					return // the family is spent or revoked: this client is done
				}
				tokens[i] = resp.GetRefreshToken()
				mine = append(mine, res.latency)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	r.DurationS = math.Round(elapsed.Seconds()*1000) / 1000
	r.OK = len(latencies)
	r.PerSecond = math.Round(float64(r.OK)/elapsed.Seconds()*10) / 10
	if len(latencies) > 0 {
		slices.Sort(latencies)
		msOf := func(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }
		r.P50ms = msOf(latencies[len(latencies)/2])
		r.P99ms = msOf(latencies[min(len(latencies)-1, len(latencies)*99/100)])
	}
	fmt.Fprintf(stderr, "loadgen: %d refreshes in %.1fs (%.1f/s), p50 %.2f ms, p99 %.2f ms, failures %v\n",
		r.OK, elapsed.Seconds(), r.PerSecond, r.P50ms, r.P99ms, r.Codes)
	return r
}
