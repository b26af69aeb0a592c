package store

import (
	"context"
	"slices"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/gatehouse-dev/gatehouse/services/internal/user"
)

// ChangesChannel is the PostgreSQL notification channel on which the users
// table announces the id of every user changed or deleted (migration
// 00003), for NewShared's owner to pass to Forget; AllUsers, after a
// TRUNCATE.
const (
	ChangesChannel = "gatehouse_users"
	AllUsers       = "*"
)

// Cached serves Get from memory: an authenticated GetUser is then no
// database read at all, which was a third of its CPU on SQLite and every
// call's round trip on PostgreSQL (make bench's profiles).
//
// It stays correct two ways. NewCached trusts that every write goes
// through it: SQLite, a file one replica mounts. NewShared is for a
// database others write too (PostgreSQL, several replicas): the owner
// calls Forget for each user changed elsewhere (the users table's trigger
// announces every change over LISTEN/NOTIFY) and SetLive as that feed comes
// and goes. Until SetLive(true), and from SetLive(false) on, Get reads the
// store and keeps nothing, since changes made meanwhile are never
// announced.
//
// Writes invalidate after they reach the store, success or not (an error
// may come after the commit). A Get that read the store while a write was
// in flight does not keep what it read: each write bumps a generation, and
// a read is remembered only if no write started or ended during it.
// Only found users are remembered; a miss is asked again. A remembered
// user is still answered while the database is down (readiness, which
// pings the database, takes the replica out of Services meanwhile).
//
// Every method of user.Store is written out rather than embedded, so a
// write method added to the interface cannot bypass the invalidation.
type Cached struct {
	store user.Store

	mu      sync.Mutex
	entries *simplelru.LRU[string, user.User] // under mu
	gen     uint64                            // writes begun or ended, forgets; under mu
	writing int                               // writes in flight; under mu
	live    bool                              // entries may be served and kept; under mu
}

// NewCached returns store with up to size users cached by id, or store
// itself when size <= 0.
func NewCached(store user.Store, size int) user.Store {
	if size <= 0 {
		return store
	}
	entries, err := simplelru.NewLRU[string, user.User](size, nil)
	if err != nil {
		return store // only for size <= 0, excluded above
	}
	return &Cached{store: store, entries: entries, live: true}
}

// NewShared returns store with up to size users cached by id, for a store
// other processes write too: it caches nothing until SetLive(true), and
// relies on Forget for every change it did not make itself. Size <= 0
// returns store itself, which is always correct.
func NewShared(store user.Store, size int) (user.Store, *Cached) {
	s := NewCached(store, size)
	c, ok := s.(*Cached)
	if !ok {
		return store, nil
	}
	c.live = false
	return c, c
}

// Forget drops what is known of the user with id (of every user, for
// AllUsers): another process changed or deleted it. A read in flight
// keeps nothing.
func (c *Cached) Forget(id string) {
	c.mu.Lock()
	c.gen++
	if id == AllUsers {
		c.entries.Purge()
	} else {
		c.entries.Remove(id)
	}
	c.mu.Unlock()
}

// SetLive says whether the feed of other processes' changes is connected.
// Going down forgets everything, because changes may now go unannounced,
// and nothing is kept until it is up again; either edge also makes a read
// in flight keep nothing, so no entry read before an unannounced change
// can outlive it.
func (c *Cached) SetLive(live bool) {
	c.mu.Lock()
	c.gen++
	c.entries.Purge()
	c.live = live
	c.mu.Unlock()
}

// Live reports whether Get may answer from memory.
func (c *Cached) Live() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live
}

// Len reports how many users are in memory.
func (c *Cached) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries.Len()
}

// Get returns the user with id from memory or, on a miss, from the store.
func (c *Cached) Get(ctx context.Context, id string) (user.User, error) {
	c.mu.Lock()
	u, ok := c.entries.Get(id)
	gen, writing, live := c.gen, c.writing, c.live
	c.mu.Unlock()
	if ok && live {
		return clone(u), nil
	}
	u, err := c.store.Get(ctx, id)
	if err != nil {
		return user.User{}, err
	}
	c.mu.Lock()
	if live && writing == 0 && c.gen == gen {
		c.entries.Add(id, clone(u))
	}
	c.mu.Unlock()
	return u, nil
}

// Update writes through and forgets the user.
func (c *Cached) Update(ctx context.Context, id string, ch user.Change) (user.User, error) {
	defer c.write(id)()
	return c.store.Update(ctx, id, ch)
}

// Delete writes through and forgets the user.
func (c *Cached) Delete(ctx context.Context, id string, ifVersion int64) error {
	defer c.write(id)()
	return c.store.Delete(ctx, id, ifVersion)
}

// EndSessions writes through and forgets the user, so the next call with
// one of its old tokens reads the new session version.
func (c *Cached) EndSessions(ctx context.Context, id string) (int64, error) {
	defer c.write(id)()
	return c.store.EndSessions(ctx, id)
}

// Create inserts through; a new id has no entry to forget, and misses are
// not remembered.
func (c *Cached) Create(ctx context.Context, u user.User) error { return c.store.Create(ctx, u) }

// GetByEmail, List and Ping read the store: Login must see a password
// change at once, and pages are not worth keeping.
func (c *Cached) GetByEmail(ctx context.Context, email string) (user.User, error) {
	return c.store.GetByEmail(ctx, email)
}

// List reads the store.
func (c *Cached) List(ctx context.Context, afterID string, limit int) ([]user.User, error) {
	return c.store.List(ctx, afterID, limit)
}

// Ping reads the store.
func (c *Cached) Ping(ctx context.Context) error { return c.store.Ping(ctx) }

// write marks a write of id as begun and returns the function that marks
// it ended; both forget id and move the generation on.
func (c *Cached) write(id string) (done func()) {
	c.mu.Lock()
	c.writing++
	c.gen++
	c.entries.Remove(id)
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.writing--
		c.gen++
		c.entries.Remove(id)
		c.mu.Unlock()
	}
}

// clone copies the one reference field, so callers cannot change an entry.
func clone(u user.User) user.User {
	u.Roles = slices.Clone(u.Roles)
	return u
}
