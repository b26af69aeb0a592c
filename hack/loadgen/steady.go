package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
)

// schedule is an open-loop plan: call i is due at i/rate seconds after the
// start whatever happened to earlier calls. A closed loop (send, wait,
// send) would slow down exactly when the servers do, and hide the calls a
// stalled rollout should have failed.
type schedule struct {
	rate          float64
	duration      time.Duration
	maxInFlight   int
	progressEvery time.Duration
}

func (s schedule) planned() int {
	return int(math.Round(s.rate * s.duration.Seconds()))
}

func (s schedule) due(start time.Time, i int) time.Time {
	return start.Add(time.Duration(float64(i) / s.rate * float64(time.Second)))
}

// run launches every planned call on time, each in its own goroutine, until
// the plan is done or ctx ends, then waits for the calls in flight so none
// is left out of the report. method names call i; call makes it.
func (s schedule) run(ctx context.Context, method func(i int) string, call func(method string) result, t *tally, stderr io.Writer) (elapsed time.Duration, interrupted bool) {
	inFlight := make(chan struct{}, s.maxInFlight)
	var wg sync.WaitGroup
	launch := func(i int) {
		m := method(i)
		select {
		case inFlight <- struct{}{}:
			wg.Go(func() {
				defer func() { <-inFlight }()
				t.add(call(m))
			})
		default:
			t.add(result{method: m, code: codeClientOverload, at: time.Now(),
				message: fmt.Sprintf("%d calls already in flight", s.maxInFlight)})
		}
	}

	start := time.Now()
	next := time.NewTimer(0)
	defer next.Stop()
	progress := time.NewTicker(s.progressEvery)
	defer progress.Stop()
	n := s.planned()
	for i := 0; i < n && !interrupted; {
		// Catch up on everything already due: a late wake-up (GC, a busy
		// node) must not lower the rate.
		for ; i < n && !time.Now().Before(s.due(start, i)); i++ {
			launch(i)
		}
		if i == n {
			break
		}
		next.Reset(time.Until(s.due(start, i)))
		select {
		case <-ctx.Done():
			interrupted = true
		case <-next.C:
		case <-progress.C:
			sent, ok := t.counts()
			fmt.Fprintf(stderr, "loadgen: %s sent=%d ok=%d failed=%d in_flight=%d\n",
				time.Since(start).Round(time.Second), i, ok, sent-ok, len(inFlight))
		}
	}
	wg.Wait()
	return time.Since(start), interrupted
}

// steadyLoad is the steady scenario's calls: GetUser of the load user as
// the load user, and every loginEvery-th call a Login whose token the
// following GetUser calls use, so a long run never outlives its token.
type steadyLoad struct {
	cfg    config
	c      *clients
	userID string
	token  atomic.Pointer[string]
	// callCtx outlives a signal: calls in flight when SIGTERM arrives
	// finish (within -timeout) instead of failing as Canceled.
	callCtx context.Context
}

func (l *steadyLoad) method(i int) string {
	if (i+1)%l.cfg.loginEvery == 0 {
		return methodLogin
	}
	return methodGetUser
}

func (l *steadyLoad) call(method string) result {
	ctx, cancel := context.WithTimeout(l.callCtx, l.cfg.timeout)
	defer cancel()
	start := time.Now()
	if method == methodLogin {
		resp, err := l.c.auth.Login(ctx, &authv1.LoginRequest{Email: l.cfg.email, Password: l.cfg.password})
		if err == nil {
			tok := resp.GetAccessToken()
			l.token.Store(&tok)
		}
		return outcome(method, start, err)
	}
	_, err := l.c.users.GetUser(withBearer(ctx, *l.token.Load()), &userv1.GetUserRequest{Id: l.userID})
	return outcome(method, start, err)
}

func runSteady(ctx context.Context, cfg config, c *clients, sess session, stderr io.Writer) steadyReport {
	l := &steadyLoad{cfg: cfg, c: c, userID: sess.userID, callCtx: context.WithoutCancel(ctx)}
	l.token.Store(&sess.accessToken)
	s := cfg.schedule()
	t := newTally()
	elapsed, interrupted := s.run(ctx, l.method, l.call, t, stderr)
	r := t.report(elapsed)
	r.Planned, r.Interrupted = s.planned(), interrupted
	return r
}

func (c config) schedule() schedule {
	return schedule{rate: c.rate, duration: c.duration, maxInFlight: c.maxInFlight, progressEvery: c.progressEvery}
}
