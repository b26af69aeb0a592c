package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	methodGetUser = "GetUser"
	methodLogin   = "Login"
	methodRefresh = "RefreshToken"

	// codeClientOverload is a call the schedule asked for but the client
	// refused because -max-in-flight calls were already waiting: it did not
	// happen, and a report that left it out would make a stalled server
	// look like a clean run.
	codeClientOverload = "client-overload"

	maxFirstErrors = 20
	// maxErrorsPerKind caps the first errors kept for one method and code,
	// so one rare code (a DeadlineExceeded among hundreds of Unavailable)
	// is not crowded out of the report by a common one.
	maxErrorsPerKind = 5
)

// result is one scheduled call's outcome.
type result struct {
	method  string
	code    string // codes.Code.String(), or codeClientOverload
	message string
	at      time.Time     // when the outcome was known
	latency time.Duration // zero for calls never sent
}

func outcome(method string, start time.Time, err error) result {
	now := time.Now()
	r := result{method: method, code: codes.OK.String(), at: now, latency: now.Sub(start)}
	if err != nil {
		s := status.Convert(err)
		r.code, r.message = s.Code().String(), s.Message()
	}
	return r
}

func (r result) ok() bool { return r.code == codes.OK.String() }

// tally accumulates results from the call goroutines.
type tally struct {
	mu          sync.Mutex
	sent        int
	ok          int
	byMethod    map[string]*methodReport
	latencies   []time.Duration
	firstErrors []string
	errorsKept  map[string]int // method+" "+code: entries in firstErrors
}

func newTally() *tally {
	return &tally{byMethod: map[string]*methodReport{}, firstErrors: []string{}, errorsKept: map[string]int{}}
}

func (t *tally) add(r result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.byMethod[r.method]
	if m == nil {
		m = &methodReport{Codes: map[string]int{}}
		t.byMethod[r.method] = m
	}
	t.sent++
	m.Sent++
	m.Codes[r.code]++
	if r.code != codeClientOverload {
		t.latencies = append(t.latencies, r.latency)
	}
	if r.ok() {
		t.ok++
		m.OK++
		return
	}
	m.Failed++
	kind := r.method + " " + r.code
	if len(t.firstErrors) < maxFirstErrors && t.errorsKept[kind] < maxErrorsPerKind {
		t.errorsKept[kind]++
		t.firstErrors = append(t.firstErrors, fmt.Sprintf("%s %s %s after %s: %s",
			r.at.UTC().Format(time.RFC3339Nano), r.method, r.code, r.latency.Round(time.Millisecond), r.message))
	}
}

// counts is what a progress line shows.
func (t *tally) counts() (sent, ok int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sent, t.ok
}

type methodReport struct {
	Sent   int            `json:"sent"`
	OK     int            `json:"ok"`
	Failed int            `json:"failed"`
	Codes  map[string]int `json:"codes"`
}

// latencyReport covers every call that was sent, failed ones included: a
// call that waited out its deadline is exactly the latency a rollout adds.
type latencyReport struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

type steadyReport struct {
	Scenario    string                   `json:"scenario"`
	Sent        int                      `json:"sent"`
	OK          int                      `json:"ok"`
	Failed      int                      `json:"failed"`
	ByMethod    map[string]*methodReport `json:"by_method"`
	LatencyMS   latencyReport            `json:"latency_ms"`
	FirstErrors []string                 `json:"first_errors"`
	DurationS   float64                  `json:"duration_s"`
	// Planned is rate*duration; Sent falls short of it only when the run
	// was interrupted.
	Planned     int  `json:"planned"`
	Interrupted bool `json:"interrupted"`
}

func (t *tally) report(elapsed time.Duration) steadyReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	sorted := slices.Clone(t.latencies)
	slices.Sort(sorted)
	byMethod := make(map[string]*methodReport, len(t.byMethod))
	for name, m := range t.byMethod {
		c := *m
		c.Codes = maps.Clone(m.Codes)
		byMethod[name] = &c
	}
	return steadyReport{
		Scenario: scenarioSteady,
		Sent:     t.sent, OK: t.ok, Failed: t.sent - t.ok,
		ByMethod: byMethod,
		LatencyMS: latencyReport{
			P50: millis(percentile(sorted, 50)),
			P99: millis(percentile(sorted, 99)),
			Max: millis(percentile(sorted, 100)),
		},
		FirstErrors: slices.Clone(t.firstErrors),
		DurationS:   math.Round(elapsed.Seconds()*1000) / 1000,
	}
}

// percentile is the nearest-rank percentile of sorted: the smallest value
// with at least p% of the values at or below it, so it is always a latency
// some call really had.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// millis keeps microsecond resolution; finer would be noise.
func millis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
