package database

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// with a ping (default 10s); with PingTimeout (default 2s) it bounds
	// how long a connection that died silently, packets dropped, goes
	// unnoticed.
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
	connected()
	l.Live(true)
	defer l.Live(false)
	for {
		wait, cancel := context.WithTimeout(ctx, l.Keepalive)
		n, err := conn.WaitForNotification(wait)
		cancel()
		switch {
		case err == nil:
			l.Notify(n.Payload)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Quiet for Keepalive: make sure the server is still there.
			ping, cancel := context.WithTimeout(ctx, l.PingTimeout)
			err := conn.Ping(ping)
			cancel()
			if err != nil {
				return fmt.Errorf("keepalive: %w", sanitize(err, cfg.Password))
			}
		default:
			return sanitize(err, cfg.Password)
		}
	}
}

// sanitize keeps the password out of a connection error's text.
func sanitize(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	return wrapf(err, secret, "database: listen")
}
