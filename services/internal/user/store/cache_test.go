package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/user"
	"github.com/gatehouse-dev/gatehouse/services/internal/user/store"
)

// openSQLiteFile is the setting Cached is used in: a SQLite file this
// process alone writes. The tests write behind the cache's back with raw
// SQL to see whether an answer came from memory.
func openSQLiteFile(t *testing.T) (context.Context, *database.DB, *store.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	db, err := database.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "users.db"), store.Migrations)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return ctx, db, store.New(db)
}

func renameBehindTheCache(t *testing.T, ctx context.Context, db *database.DB, id, name string) {
	t.Helper()
	if _, err := db.SQL().ExecContext(ctx, `UPDATE users SET display_name = $1 WHERE id = $2`, name, id); err != nil {
		t.Fatal(err)
	}
}

func displayName(t *testing.T, ctx context.Context, s user.Store, id string) string {
	t.Helper()
	u, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return u.DisplayName
}

func TestCachedServesGetsAndForgetsOnWrites(t *testing.T) {
	ctx, db, plain := openSQLiteFile(t)
	s := store.NewCached(plain, 10)
	u := mustCreate(t, ctx, s, newUser(t, "cached@example.com"))

	if got := displayName(t, ctx, s, u.ID); got != u.DisplayName {
		t.Fatalf("first Get = %q, want %q", got, u.DisplayName)
	}
	renameBehindTheCache(t, ctx, db, u.ID, "changed behind the cache")
	if got := displayName(t, ctx, s, u.ID); got != u.DisplayName {
		t.Fatalf("second Get = %q, want the remembered %q", got, u.DisplayName)
	}

	u.DisplayName = "updated through the cache"
	if _, err := s.Update(ctx, u.ID, user.Change{DisplayName: &u.DisplayName}); err != nil {
		t.Fatal(err)
	}
	if got := displayName(t, ctx, s, u.ID); got != u.DisplayName {
		t.Fatalf("Get after Update = %q, want %q", got, u.DisplayName)
	}

	// Ending sessions is a write too: the next Get sees the new version,
	// which is what refuses the user's older tokens.
	v, err := s.EndSessions(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, u.ID); err != nil || got.SessionVersion != v {
		t.Fatalf("Get after EndSessions = %+v, %v; want session version %d", got, err, v)
	}

	if err := s.Delete(ctx, u.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, u.ID); !errors.Is(err, user.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
}

func TestCachedForgetsOnFailedWrites(t *testing.T) {
	ctx, db, plain := openSQLiteFile(t)
	s := store.NewCached(plain, 10)
	u := mustCreate(t, ctx, s, newUser(t, "failed-write@example.com"))
	other := mustCreate(t, ctx, s, newUser(t, "taken@example.com"))
	displayName(t, ctx, s, u.ID) // remembered

	// The update fails (the email belongs to other), yet the entry is
	// dropped: a failed write may still have changed the row.
	renameBehindTheCache(t, ctx, db, u.ID, "changed behind the cache")
	if _, err := s.Update(ctx, u.ID, user.Change{Email: &other.Email}); !errors.Is(err, user.ErrEmailTaken) {
		t.Fatalf("Update = %v, want ErrEmailTaken", err)
	}
	if got := displayName(t, ctx, s, u.ID); got != "changed behind the cache" {
		t.Fatalf("Get after a failed Update = %q, want the stored name", got)
	}
}

func TestCachedEntriesAreCopies(t *testing.T) {
	ctx, _, plain := openSQLiteFile(t)
	s := store.NewCached(plain, 10)
	u := newUser(t, "copies@example.com")
	u.Roles = []string{"admin"}
	mustCreate(t, ctx, s, u)

	first, err := s.Get(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	first.Roles[0] = "changed by a caller"
	second, err := s.Get(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if second.Roles[0] != "admin" {
		t.Fatalf("roles after a caller changed its copy = %v, want [admin]", second.Roles)
	}
}

func TestCachedDoesNotRememberMisses(t *testing.T) {
	ctx, _, plain := openSQLiteFile(t)
	s := store.NewCached(plain, 10)
	u := newUser(t, "later@example.com")
	if _, err := s.Get(ctx, u.ID); !errors.Is(err, user.ErrNotFound) {
		t.Fatalf("Get before Create = %v, want ErrNotFound", err)
	}
	mustCreate(t, ctx, s, u)
	if got := displayName(t, ctx, s, u.ID); got != u.DisplayName {
		t.Fatalf("Get after Create = %q, want %q", got, u.DisplayName)
	}
}

func TestCachedEvictsBeyondItsSize(t *testing.T) {
	ctx, db, plain := openSQLiteFile(t)
	s := store.NewCached(plain, 2)
	var ids []string
	for _, email := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		u := mustCreate(t, ctx, s, newUser(t, email))
		displayName(t, ctx, s, u.ID)
		ids = append(ids, u.ID)
	}
	for _, id := range ids {
		renameBehindTheCache(t, ctx, db, id, "renamed")
	}
	// Newest first, so a miss does not evict an entry still to be checked.
	want := []string{"renamed", "Name of b@example.com", "Name of c@example.com"}
	for i := len(ids) - 1; i >= 0; i-- {
		if got := displayName(t, ctx, s, ids[i]); got != want[i] {
			t.Errorf("user %d: Get = %q, want %q (size 2 keeps the two most recent)", i, got, want[i])
		}
	}
}

func TestNewCachedSizeZeroIsTheStoreItself(t *testing.T) {
	_, _, plain := openSQLiteFile(t)
	if s := store.NewCached(plain, 0); s != user.Store(plain) {
		t.Fatalf("NewCached(store, 0) = %T, want the store unchanged", s)
	}
}

// pausingStore holds its next Get after the read until released, to let a
// write happen between the read and the moment Cached would remember it.
type pausingStore struct {
	user.Store
	pause         atomic.Bool
	read, release chan struct{}
}

func (p *pausingStore) Get(ctx context.Context, id string) (user.User, error) {
	u, err := p.Store.Get(ctx, id)
	if p.pause.CompareAndSwap(true, false) {
		p.read <- struct{}{}
		<-p.release
	}
	return u, err
}

func TestCachedDropsAReadThatRacedAWrite(t *testing.T) {
	ctx, _, plain := openSQLiteFile(t)
	paused := &pausingStore{Store: plain, read: make(chan struct{}), release: make(chan struct{})}
	s := store.NewCached(paused, 10)
	u := mustCreate(t, ctx, s, newUser(t, "race@example.com"))
	oldName := u.DisplayName

	paused.pause.Store(true)
	got := make(chan string, 1)
	go func() {
		r, err := s.Get(ctx, u.ID)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- r.DisplayName
	}()
	<-paused.read // the racing Get has read the old row

	u.DisplayName = "written during the read"
	if _, err := s.Update(ctx, u.ID, user.Change{DisplayName: &u.DisplayName}); err != nil {
		t.Fatal(err)
	}
	close(paused.release)
	if r := <-got; r != oldName {
		t.Fatalf("racing Get = %q, want the row it read, %q", r, oldName)
	}
	if r := displayName(t, ctx, s, u.ID); r != u.DisplayName {
		t.Fatalf("Get after the write = %q, want %q: the racing read was remembered", r, u.DisplayName)
	}
}

// TestCachedAnswersRememberedUsersWhileTheDatabaseIsDown pins down a choice:
// a remembered user is still served (readiness takes the replica out of
// rotation meanwhile), while anything not remembered reports the outage.
func TestCachedAnswersRememberedUsersWhileTheDatabaseIsDown(t *testing.T) {
	ctx, db, plain := openSQLiteFile(t)
	s := store.NewCached(plain, 10)
	seen := mustCreate(t, ctx, s, newUser(t, "seen@example.com"))
	unseen := mustCreate(t, ctx, s, newUser(t, "unseen@example.com"))
	displayName(t, ctx, s, seen.ID)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got := displayName(t, ctx, s, seen.ID); got != seen.DisplayName {
		t.Fatalf("remembered user with the database down = %q, want %q", got, seen.DisplayName)
	}
	if _, err := s.Get(ctx, unseen.ID); !errors.Is(err, user.ErrUnavailable) {
		t.Fatalf("user never read, database down = %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, user.ErrUnavailable) {
		t.Fatalf("Ping with the database down = %v, want ErrUnavailable", err)
	}
}
