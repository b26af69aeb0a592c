package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
)

// stepReport is one raced token family. The program reports and never
// asserts: the e2e test decides what a failure is, and sees all of it.
type stepReport struct {
	// OK is how many racing clients got a new token; rotation must let
	// exactly one through even when replicas race on the shared store.
	OK int `json:"ok"`
	// Codes counts the other clients' answers.
	Codes map[string]int `json:"codes"`
	// WinnerRefusedAfter: the losers presented a spent token, which is
	// reuse, so the family (the winner's new token included) must be
	// revoked. True when every winner's new token was then refused with
	// Unauthenticated; false when there was no winner.
	WinnerRefusedAfter bool `json:"winner_refused_after"`
	// WinnerAfterCode is the answer to the winner's new token (the first
	// one not refused, if several won).
	WinnerAfterCode string `json:"winner_after_code,omitempty"`
	// LoginError is set when the step could not start: no family, no race.
	LoginError string `json:"login_error,omitempty"`
}

type stormReport struct {
	Scenario           string       `json:"scenario"`
	Clients            int          `json:"clients"`
	Steps              []stepReport `json:"steps"`
	StepsExactlyOneOK  int          `json:"steps_exactly_one_ok"`
	StepsWinnerRefused int          `json:"steps_winner_refused"`
	// FirstErrors holds failures other than the Unauthenticated refusals
	// the race is meant to produce: those are what needs explaining.
	FirstErrors []string `json:"first_errors"`
	DurationS   float64  `json:"duration_s"`
	Interrupted bool     `json:"interrupted"`
}

func (r *stormReport) noteError(res result) {
	if res.ok() || res.code == codes.Unauthenticated.String() || len(r.FirstErrors) >= maxFirstErrors {
		return
	}
	r.FirstErrors = append(r.FirstErrors, fmt.Sprintf("%s %s %s %s", res.at.UTC().Format(time.RFC3339Nano), res.method, res.code, res.message))
}

func runStorm(ctx context.Context, cfg config, c *clients, stderr io.Writer) stormReport {
	r := stormReport{Scenario: scenarioStorm, Clients: cfg.clients, Steps: []stepReport{}, FirstErrors: []string{}}
	// Steps in progress finish after a signal; only new ones are skipped.
	callCtx := context.WithoutCancel(ctx)
	start := time.Now()
	for i := range cfg.steps {
		if ctx.Err() != nil {
			r.Interrupted = true
			break
		}
		step := stormStep(callCtx, cfg, c, &r)
		r.Steps = append(r.Steps, step)
		if step.OK == 1 {
			r.StepsExactlyOneOK++
		}
		if step.WinnerRefusedAfter {
			r.StepsWinnerRefused++
		}
		fmt.Fprintf(stderr, "loadgen: step %d/%d ok=%d codes=%v winner_refused_after=%t%s\n",
			i+1, cfg.steps, step.OK, step.Codes, step.WinnerRefusedAfter, loginNote(step))
	}
	r.DurationS = math.Round(time.Since(start).Seconds()*1000) / 1000
	return r
}

func loginNote(s stepReport) string {
	if s.LoginError == "" {
		return ""
	}
	return " login_error=" + s.LoginError
}

// stormStep logs in for a fresh family, races every client on its refresh
// token, then presents the winners' new tokens once more.
func stormStep(ctx context.Context, cfg config, c *clients, r *stormReport) stepReport {
	step := stepReport{Codes: map[string]int{}}
	token, res := logIn(ctx, cfg, c)
	if !res.ok() {
		r.noteError(res)
		step.LoginError = res.code + ": " + res.message
		return step
	}

	var winners []string
	for _, o := range race(ctx, cfg, c, token) {
		r.noteError(o.result)
		if o.ok() {
			step.OK++
			winners = append(winners, o.newToken)
			continue
		}
		step.Codes[o.code]++
	}
	step.WinnerRefusedAfter, step.WinnerAfterCode = refusedAfter(ctx, cfg, c, winners, r)
	return step
}

// logIn is one Login of the load user within cfg.timeout: its refresh
// token, and how it went.
func logIn(ctx context.Context, cfg config, c *clients) (string, result) {
	lctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	start := time.Now()
	login, err := c.auth.Login(lctx, &authv1.LoginRequest{Email: cfg.email, Password: cfg.password})
	return login.GetRefreshToken(), outcome(methodLogin, start, err)
}

type refreshOutcome struct {
	result
	newToken string
}

// race sends the same refresh token from cfg.clients goroutines released
// together, so the calls overlap on the server as much as the transport
// allows: a staggered start would test sequential reuse, not the race.
func race(ctx context.Context, cfg config, c *clients, token string) []refreshOutcome {
	out := make([]refreshOutcome, cfg.clients)
	var ready, done sync.WaitGroup
	release := make(chan struct{})
	ready.Add(cfg.clients)
	for i := range out {
		done.Go(func() {
			ready.Done()
			<-release
			cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
			defer cancel()
			start := time.Now()
			resp, err := c.auth.RefreshToken(cctx, &authv1.RefreshTokenRequest{RefreshToken: token})
			out[i] = refreshOutcome{result: outcome(methodRefresh, start, err), newToken: resp.GetRefreshToken()}
		})
	}
	ready.Wait()
	close(release)
	done.Wait()
	return out
}

// refusedAfter presents each winner's new token; reuse detection should
// have revoked the family, so each must be refused as Unauthenticated.
// Any other answer (Unavailable, say) proves nothing either way and
// counts as not refused.
func refusedAfter(ctx context.Context, cfg config, c *clients, winners []string, r *stormReport) (bool, string) {
	if len(winners) == 0 {
		return false, ""
	}
	want := codes.Unauthenticated.String()
	for _, tok := range winners {
		cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
		start := time.Now()
		_, err := c.auth.RefreshToken(cctx, &authv1.RefreshTokenRequest{RefreshToken: tok})
		cancel()
		res := outcome(methodRefresh, start, err)
		if res.code != want {
			r.noteError(res)
			return false, res.code
		}
	}
	return true, want
}
