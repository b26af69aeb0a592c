package store_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database/dbtest"
	"github.com/gatehouse-dev/gatehouse/services/internal/user"
	"github.com/gatehouse-dev/gatehouse/services/internal/user/store"
)

// seenWithin bounds how long a change made through one replica may take to
// reach another's cache. It is a correctness bound, not a speed goal: what
// the notifications take on loopback is logged (milliseconds); this only
// has to be far above it.
const seenWithin = 5 * time.Second

// replica is one User service's view of a shared PostgreSQL database: its
// own pool, its shared cache and the listener that keeps the cache correct.
type replica struct {
	db    *database.DB
	users user.Store
	cache *store.Cached
	reads *atomic.Int64 // Gets that reached the database
}

func newReplica(t *testing.T, url string, l database.Listener) replica {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := database.Open(ctx, url, store.Migrations)
	if err != nil {
		t.Fatal(err)
	}
	reads := new(atomic.Int64)
	users, cache := store.NewShared(countingGets{store.New(db), reads}, 100)
	lctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	l.Channel, l.Notify, l.Live = store.ChangesChannel, cache.Forget, cache.SetLive
	if l.Keepalive == 0 {
		// Short, so the waits time out and the pings run all the time: a
		// keepalive that broke the connection would lose notifications.
		l.Keepalive = 50 * time.Millisecond
	}
	go func() {
		defer close(done)
		_ = db.Listen(lctx, l)
	}()
	t.Cleanup(func() {
		stop()
		<-done
		_ = db.Close()
	})
	waitFor(t, "the listener to be live", func() bool { return cache.Live() })
	return replica{db: db, users: users, cache: cache, reads: reads}
}

// countingGets is the real store, counting the Gets that reach it.
type countingGets struct {
	user.Store
	n *atomic.Int64
}

func (c countingGets) Get(ctx context.Context, id string) (user.User, error) {
	c.n.Add(1)
	return c.Store.Get(ctx, id)
}

func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > seenWithin {
			t.Fatalf("not within %s: %s", seenWithin, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// TestSharedCacheAcrossReplicas: two replicas on one PostgreSQL database.
// Replica A answers GetUser from memory, and every change made elsewhere —
// through replica B, ending sessions (a revocation), deleting, or an
// operator's SQL — reaches A's answers within seenWithin.
func TestSharedCacheAcrossReplicas(t *testing.T) {
	url := dbtest.PostgresURL(t)
	a := newReplica(t, url, database.Listener{})
	b := newReplica(t, url, database.Listener{})
	ctx := context.Background()
	u := mustCreate(t, ctx, b.users, newUser(t, "shared@example.com"))

	get := func() (user.User, error) { return a.users.Get(ctx, u.ID) }
	if _, err := get(); err != nil {
		t.Fatal(err)
	}
	before := a.reads.Load()
	for range 10 {
		if _, err := get(); err != nil {
			t.Fatal(err)
		}
	}
	if n := a.reads.Load() - before; n != 0 {
		t.Fatalf("10 Gets of a cached user reached the database %d times, want 0", n)
	}

	for _, tc := range []struct {
		name   string
		change func(t *testing.T)
		seen   func(u user.User, err error) bool
	}{
		{"display name changed through B", func(t *testing.T) {
			if _, err := b.users.Update(ctx, u.ID, user.Change{DisplayName: ptr("renamed by B")}); err != nil {
				t.Fatal(err)
			}
		}, func(got user.User, err error) bool { return err == nil && got.DisplayName == "renamed by B" }},
		{"sessions ended through B", func(t *testing.T) {
			if _, err := b.users.EndSessions(ctx, u.ID); err != nil {
				t.Fatal(err)
			}
		}, func(got user.User, err error) bool { return err == nil && got.SessionVersion == u.SessionVersion+1 }},
		{"renamed by an operator's SQL", func(t *testing.T) {
			if _, err := b.db.SQL().ExecContext(ctx, `UPDATE users SET display_name = 'by psql' WHERE id = $1`, u.ID); err != nil {
				t.Fatal(err)
			}
		}, func(got user.User, err error) bool { return err == nil && got.DisplayName == "by psql" }},
		{"deleted through B", func(t *testing.T) {
			if err := b.users.Delete(ctx, u.ID, 0); err != nil {
				t.Fatal(err)
			}
		}, func(_ user.User, err error) bool { return errors.Is(err, user.ErrNotFound) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := get(); err != nil || tc.seen(got, err) {
				t.Fatalf("before the change A already answers %+v, %v", got, err)
			}
			tc.change(t)
			took := waitFor(t, "A answers the change", func() bool { return tc.seen(get()) })
			t.Logf("replica A answered the change after %s", took.Round(100*time.Microsecond))
		})
	}
}

// TestSharedCacheForgetsATruncate: TRUNCATE fires no row trigger; the
// statement trigger's "*" makes every replica forget everyone.
func TestSharedCacheForgetsATruncate(t *testing.T) {
	url := dbtest.PostgresURL(t)
	a := newReplica(t, url, database.Listener{})
	b := newReplica(t, url, database.Listener{})
	ctx := context.Background()
	u := mustCreate(t, ctx, b.users, newUser(t, "truncated@example.com"))
	if _, err := a.users.Get(ctx, u.ID); err != nil || a.cache.Len() != 1 {
		t.Fatalf("Get: %v; A caches %d", err, a.cache.Len())
	}
	if _, err := b.db.SQL().ExecContext(ctx, `TRUNCATE users`); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, "A forgets the truncated user", func() bool {
		_, err := a.users.Get(ctx, u.ID)
		return errors.Is(err, user.ErrNotFound)
	})
	t.Logf("replica A forgot the truncated table after %s", took.Round(100*time.Microsecond))
}

// TestSharedCacheWhileNotListening: when A's listening connection dies,
// changes made before it listens again are never announced. A must not
// answer from memory meanwhile, and must forget what it held once it
// listens again.
func TestSharedCacheWhileNotListening(t *testing.T) {
	url := dbtest.PostgresURL(t)
	// A slow reconnection leaves a window in which to change the user.
	a := newReplica(t, url, database.Listener{MinBackoff: 2 * time.Second, MaxBackoff: 2 * time.Second})
	b := newReplica(t, url, database.Listener{})
	ctx := context.Background()
	u := mustCreate(t, ctx, b.users, newUser(t, "unheard@example.com"))
	if got := displayName(t, ctx, a.users, u.ID); got != u.DisplayName {
		t.Fatalf("Get = %q", got)
	}
	if a.cache.Len() != 1 {
		t.Fatalf("A caches %d users, want 1", a.cache.Len())
	}

	// The server ends A's listening session, as a PostgreSQL restart or
	// failover would.
	var n int
	if err := b.db.SQL().QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()`,
		"gatehouse-listen-"+store.ChangesChannel).Scan(&n); err != nil || n != 2 {
		t.Fatalf("terminating the listeners: %d, %v", n, err)
	}
	waitFor(t, "A notices it is not listening", func() bool { return !a.cache.Live() })
	if a.cache.Len() != 0 {
		t.Fatalf("A still caches %d users while not listening", a.cache.Len())
	}
	if _, err := b.db.SQL().ExecContext(ctx, `UPDATE users SET display_name = 'unannounced' WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	// Not listening: every Get reads the database, and keeps nothing.
	before := a.reads.Load()
	if got := displayName(t, ctx, a.users, u.ID); got != "unannounced" {
		t.Fatalf("Get while not listening = %q, want the database's", got)
	}
	if a.reads.Load() == before || a.cache.Len() != 0 {
		t.Fatalf("while not listening A read %d times and caches %d users", a.reads.Load()-before, a.cache.Len())
	}
	waitFor(t, "A listens again", a.cache.Live)
	if got := displayName(t, ctx, a.users, u.ID); got != "unannounced" {
		t.Fatalf("Get after listening again = %q", got)
	}
	// And is kept correct again from then on.
	if _, err := b.users.Update(ctx, u.ID, user.Change{DisplayName: ptr("after reconnect")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A answers the change after reconnecting", func() bool {
		return displayName(t, ctx, a.users, u.ID) == "after reconnect"
	})
}

// TestListenNeedsPostgres: SQLite has no notifications, and a Listener
// without its callbacks is refused rather than run.
func TestListenNeedsPostgres(t *testing.T) {
	ctx, db, _ := openSQLiteFile(t)
	err := db.Listen(ctx, database.Listener{Channel: "x", Notify: func(string) {}, Live: func(bool) {}})
	if err == nil {
		t.Fatal("Listen on SQLite: no error")
	}
	pg := dbtest.Postgres(t, store.Migrations)
	if err := pg.Listen(ctx, database.Listener{Channel: "x"}); err == nil {
		t.Fatal("Listen without Notify and Live: no error")
	}
}
