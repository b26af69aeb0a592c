package database

import (
	"context"
	"database/sql/driver"
	"errors"
	"syscall"
	"testing"
	"time"
)

// scriptedConnector answers Connect with the next error of its script
// (nil: a connection) and counts the attempts that reached it.
type scriptedConnector struct {
	driver.Connector
	script   []error
	attempts int
}

type fakeConn struct{ driver.Conn }

func (c *scriptedConnector) Connect(context.Context) (driver.Conn, error) {
	err := c.script[c.attempts]
	c.attempts++
	if err != nil {
		return nil, err
	}
	return fakeConn{}, nil
}

func TestFailFastConnector(t *testing.T) {
	refused := &dialError{syscall.ECONNREFUSED}
	type step struct {
		at          time.Duration // clock, from the start
		cancelled   bool          // the caller's context is already done
		wantAttempt bool          // reached the database
		wantErr     error         // errors.Is target; nil: connected
	}
	tests := []struct {
		name   string
		script []error
		steps  []step
	}{
		{"a failure answers for the next second", []error{refused, nil}, []step{
			{at: 0, wantAttempt: true, wantErr: syscall.ECONNREFUSED},
			{at: 10 * time.Millisecond, wantErr: ErrRecentlyUnreachable},
			{at: 999 * time.Millisecond, wantErr: ErrRecentlyUnreachable},
			{at: 1000 * time.Millisecond, wantAttempt: true},
		}},
		{"a success resets", []error{refused, nil, nil}, []step{
			{at: 0, wantAttempt: true, wantErr: syscall.ECONNREFUSED},
			{at: 2 * time.Second, wantAttempt: true},
			{at: 2*time.Second + time.Millisecond, wantAttempt: true},
		}},
		{"a caller giving up says nothing about the database", []error{context.Canceled, nil}, []step{
			{at: 0, cancelled: true, wantAttempt: true, wantErr: context.Canceled},
			{at: time.Millisecond, wantAttempt: true},
		}},
		{"an error that is not unavailability does not trip it", []error{errors.New("password authentication failed"), nil}, []step{
			{at: 0, wantAttempt: true, wantErr: errors.New("")},
			{at: time.Millisecond, wantAttempt: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Unix(1_700_000_000, 0)
			var now time.Time
			inner := &scriptedConnector{script: tt.script}
			c := &failFastConnector{Connector: inner, now: func() time.Time { return now }}
			for i, s := range tt.steps {
				now = start.Add(s.at)
				ctx, cancel := context.WithCancel(context.Background())
				if s.cancelled {
					cancel()
				}
				before := inner.attempts
				conn, err := c.Connect(ctx)
				cancel()
				if got := inner.attempts > before; got != s.wantAttempt {
					t.Errorf("step %d: reached the database = %v, want %v", i, got, s.wantAttempt)
				}
				switch {
				case s.wantErr == nil && err != nil:
					t.Errorf("step %d: %v, want a connection", i, err)
				case s.wantErr != nil && err == nil:
					t.Errorf("step %d: connected, want an error", i)
				case s.wantErr != nil && s.wantErr.Error() != "" && !errors.Is(err, s.wantErr):
					t.Errorf("step %d: %v, want %v", i, err, s.wantErr)
				case s.wantErr == nil && conn == nil:
					t.Errorf("step %d: no connection", i)
				}
				if errors.Is(err, ErrRecentlyUnreachable) && !IsUnavailable(err) {
					t.Errorf("step %d: IsUnavailable(%v) = false", i, err)
				}
			}
		})
	}
}

// dialError is a refused dial the way a driver wraps it: an error chain
// ending in ECONNREFUSED.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial tcp: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// blockingConnector holds every attempt until release is closed, then
// answers err.
type blockingConnector struct {
	driver.Connector
	started chan struct{}
	release chan struct{}
	err     error
}

func (c *blockingConnector) Connect(context.Context) (driver.Conn, error) {
	c.started <- struct{}{}
	<-c.release
	if c.err != nil {
		return nil, c.err
	}
	return fakeConn{}, nil
}

// TestFailFastConnectorProbesAlone: after a failure has aged, one caller
// tries the database while every other fails at once, so a database whose
// address drops packets costs one connect timeout per failFastFor, not one
// per call.
func TestFailFastConnectorProbesAlone(t *testing.T) {
	refused := &dialError{syscall.ECONNREFUSED}
	for _, tt := range []struct {
		name       string
		probe      error // what the probe's attempt answers
		wantClosed bool  // the next caller, right after the probe, reaches the database
	}{
		{"probe connects: the breaker closes", nil, true},
		{"probe fails: another second of failing fast", refused, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			inner := &blockingConnector{started: make(chan struct{}, 1), release: make(chan struct{}), err: tt.probe}
			c := &failFastConnector{Connector: inner, now: func() time.Time { return now }}
			c.failedAt, c.lastFailed = now, refused
			now = now.Add(failFastFor)

			probeErr := make(chan error, 1)
			go func() {
				_, err := c.Connect(context.Background())
				probeErr <- err
			}()
			<-inner.started
			for i := range 3 {
				if _, err := c.Connect(context.Background()); !errors.Is(err, ErrRecentlyUnreachable) {
					t.Fatalf("caller %d during the probe: %v, want ErrRecentlyUnreachable without an attempt", i, err)
				}
			}
			close(inner.release)
			if err := <-probeErr; !errors.Is(err, tt.probe) || (tt.probe == nil) != (err == nil) {
				t.Fatalf("probe: %v, want %v", err, tt.probe)
			}

			_, err := c.Connect(context.Background())
			select {
			case <-inner.started:
				if !tt.wantClosed {
					t.Fatalf("caller after a failed probe reached the database")
				}
				if err != nil {
					t.Fatalf("caller after a good probe: %v", err)
				}
			default:
				if tt.wantClosed {
					t.Fatalf("caller after a good probe: %v, want an attempt", err)
				}
				if !errors.Is(err, ErrRecentlyUnreachable) {
					t.Fatalf("caller after a failed probe: %v, want ErrRecentlyUnreachable", err)
				}
			}
		})
	}
}
