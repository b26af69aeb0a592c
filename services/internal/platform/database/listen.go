package database

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// Listener receives PostgreSQL notifications on one channel (LISTEN), over
// a connection of its own outside the pool. Between a lost connection and
// the next LISTEN, notifications are not delivered and not kept by the
// server, so whoever relies on them hears of both edges through Live.
type Listener struct {
	// Channel is the notification channel to LISTEN on.
	Channel string
	// Notify is called with each notification's payload, in order, on
	// Listen's goroutine.
	Notify func(payload string)
	// Live is called with true once LISTEN is in place (at the first
	// connection and after every reconnection), and with false as soon as
	// the connection is found broken. A cache kept correct by Notify must
	// forget everything and stop filling at false: what changed meanwhile
	// is never announced.
	Live func(live bool)
	// Keepalive is how long a quiet connection waits before it is checked
	// (default 10s): Listen sends itself a notification and expects it
	// back within PingTimeout (default 2s), as it does before going live.
	// Together they bound how long a connection that died silently, or
	// one that stopped delivering, goes unnoticed.
	Keepalive   time.Duration
	PingTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts, doubling from the first (defaults 200ms and 5s).
	MinBackoff, MaxBackoff time.Duration
	// Log receives connection losses and reconnections (default: discard).
	Log *slog.Logger
}

// Listen runs l on db until ctx ends, reconnecting whenever the connection
// drops; it returns ctx's error. Only PostgreSQL has notifications: on
// SQLite it returns an error at once.
func (db *DB) Listen(ctx context.Context, l Listener) error {
	if db.dialect != DialectPostgres || db.pgConfig == nil {
		return fmt.Errorf("database: LISTEN needs PostgreSQL, not %s", db.dialect)
	}
	if l.Channel == "" || l.Notify == nil || l.Live == nil {
		return errors.New("database: Listener needs Channel, Notify and Live")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&l.Keepalive, 10*time.Second)
	def(&l.PingTimeout, 2*time.Second)
	def(&l.MinBackoff, 200*time.Millisecond)
	def(&l.MaxBackoff, 5*time.Second)
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := db.pgConfig.Copy()
	// A wait that times out for the keepalive must leave the connection
	// usable: pgx's default on a context's end also sends the server a
	// cancel request over a new connection, every Keepalive. A deadline
	// on the socket interrupts the read and nothing else.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "gatehouse-listen-" + l.Channel

	backoff := l.MinBackoff
	for {
		err := db.listenOnce(ctx, cfg, &l, func() { backoff = l.MinBackoff })
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("database: notifications lost until reconnected", "channel", l.Channel, "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, l.MaxBackoff)
	}
}

// listenOnce connects, LISTENs and delivers notifications until the
// connection fails or ctx ends. Live(false) follows every Live(true).
func (db *DB) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, l *Listener, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return sanitize(err, cfg.Password)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.Channel}.Sanitize()); err != nil {
		return sanitize(err, cfg.Password)
	}
	// Live only once a notification is seen to arrive: behind a pooler
	// in transaction mode (PgBouncer) LISTEN succeeds and nothing ever
	// comes, and a cache that believed itself told would go stale.
	var probes uint64
	probe := func() error {
		probes++
		payload := fmt.Sprintf("%s%d", probePrefix, probes)
		pctx, cancel := context.WithTimeout(ctx, l.PingTimeout)
		defer cancel()
		if _, err := conn.Exec(pctx, "SELECT pg_notify($1, $2)", l.Channel, payload); err != nil {
			return sanitize(err, cfg.Password)
		}
		for {
			n, err := conn.WaitForNotification(pctx)
			if err != nil {
				if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("a notification sent on %q did not come back within %s (a connection pooler in transaction mode?)", l.Channel, l.PingTimeout)
				}
				return sanitize(err, cfg.Password)
			}
			if n.Payload == payload {
				return nil
			}
			if !strings.HasPrefix(n.Payload, probePrefix) {
				l.Notify(n.Payload)
			}
		}
	}
	if err := probe(); err != nil {
		return err
	}
	connected()
	l.Live(true)
	defer l.Live(false)
	for {
		wait, cancel := context.WithTimeout(ctx, l.Keepalive)
		n, err := conn.WaitForNotification(wait)
		cancel()
		switch {
		case err == nil:
			if !strings.HasPrefix(n.Payload, probePrefix) {
				l.Notify(n.Payload)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Quiet for Keepalive: make sure notifications still arrive.
			if err := probe(); err != nil {
				return fmt.Errorf("keepalive: %w", err)
			}
		default:
			return sanitize(err, cfg.Password)
		}
	}
}

// probePrefix marks the notifications Listen sends itself to check that
// they arrive; they are never passed to Notify.
const probePrefix = "gatehouse-listen-probe:"

// sanitize keeps the password out of a connection error's text.
func sanitize(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	return wrapf(err, secret, "database: listen")
}
