package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database/dbtest"
	"github.com/gatehouse-dev/gatehouse/services/internal/user"
	"github.com/gatehouse-dev/gatehouse/services/internal/user/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// each runs fn on a fresh, migrated SQLite and PostgreSQL database, through
// the store and again through the store behind Cached: both must keep the
// same contract.
func each(t *testing.T, fn func(t *testing.T, ctx context.Context, s user.Store, db *database.DB)) {
	t.Helper()
	for _, v := range []struct {
		name string
		wrap func(user.Store) user.Store
	}{
		{"store", func(s user.Store) user.Store { return s }},
		{"cached", func(s user.Store) user.Store { return store.NewCached(s, 100) }},
	} {
		t.Run(v.name, func(t *testing.T) {
			dbtest.Each(t, store.Migrations, func(t *testing.T, db *database.DB) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				fn(t, ctx, v.wrap(store.New(db)), db)
			})
		})
	}
}

func newID(t *testing.T) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

func newUser(t *testing.T, email string) user.User {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	return user.User{
		ID:           newID(t),
		Email:        email,
		DisplayName:  "Name of " + email,
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
		CreateTime:   now,
		UpdateTime:   now,
		Version:      1,
	}
}

func mustCreate(t *testing.T, ctx context.Context, s user.Store, u user.User) user.User {
	t.Helper()
	if err := s.Create(ctx, u); err != nil {
		t.Fatalf("Create(%s): %v", u.Email, err)
	}
	return u
}

func assertUser(t *testing.T, got, want user.User) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("user mismatch\n got %+v\nwant %+v", got, want)
	}
	if got.CreateTime.Location() != time.UTC || got.UpdateTime.Location() != time.UTC {
		t.Errorf("times not in UTC: %v, %v", got.CreateTime.Location(), got.UpdateTime.Location())
	}
}

// assertClean checks that an error a client might see through its message
// carries no SQL.
func assertClean(t *testing.T, err error) {
	t.Helper()
	for _, word := range []string{"SELECT", "INSERT", "UPDATE users", "DELETE FROM"} {
		if strings.Contains(err.Error(), word) {
			t.Errorf("error %q contains SQL (%s)", err, word)
		}
	}
}

func TestCreateAndGet(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s user.Store, _ *database.DB) {
		tests := []struct {
			name  string
			email string
			edit  func(*user.User)
		}{
			{"no roles", "plain@example.com", func(*user.User) {}},
			{"admin", "admin@example.com", func(u *user.User) { u.Roles = []string{user.RoleAdmin} }},
			{"two roles", "svc@example.com", func(u *user.User) { u.Roles = []string{"auditor", user.RoleAdmin} }},
			{"session version", "sv@example.com", func(u *user.User) { u.SessionVersion = 7 }},
			{"unicode name", "unicode@example.com", func(u *user.User) { u.DisplayName = "Zoë 山田 \U0001F600" }},
			{"empty name", "noname@example.com", func(u *user.User) { u.DisplayName = "" }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				want := newUser(t, tt.email)
				tt.edit(&want)
				mustCreate(t, ctx, s, want)

				got, err := s.Get(ctx, want.ID)
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				assertUser(t, got, want)

				got, err = s.GetByEmail(ctx, tt.email)
				if err != nil {
					t.Fatalf("GetByEmail: %v", err)
				}
				assertUser(t, got, want)

				got, err = s.GetByEmail(ctx, strings.ToUpper(tt.email))
				if err != nil {
					t.Fatalf("GetByEmail in upper case: %v", err)
				}
				assertUser(t, got, want)
			})
		}
	})
}

func TestCreateRejectsTakenEmail(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s user.Store, _ *database.DB) {
		first := mustCreate(t, ctx, s, newUser(t, "taken@example.com"))
		for _, email := range []string{"taken@example.com", "Taken@Example.COM", "TAKEN@EXAMPLE.COM"} {
			t.Run(email, func(t *testing.T) {
				err := s.Create(ctx, newUser(t, email))
				if !errors.Is(err, user.ErrEmailTaken) {
					t.Fatalf("Create(%s) = %v, want ErrEmailTaken", email, err)
				}
				if errors.Is(err, user.ErrUnavailable) || errors.Is(err, user.ErrNotFound) {
					t.Errorf("Create(%s) = %v also matches another sentinel", email, err)
				}
				assertClean(t, err)
			})
		}
		got, err := s.GetByEmail(ctx, "taken@example.com")
		if err != nil || got.ID != first.ID {
			t.Errorf("after conflicts GetByEmail = %v, %v; want the first user %s", got.ID, err, first.ID)
		}
	})
}

func TestNotFound(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s user.Store, _ *database.DB) {
		existing := mustCreate(t, ctx, s, newUser(t, "exists@example.com"))
		ghost := newUser(t, "ghost@example.com")
		tests := []struct {
			name string
			call func() error
		}{
			{"Get", func() error { _, err := s.Get(ctx, ghost.ID); return err }},
			{"Get empty id", func() error { _, err := s.Get(ctx, ""); return err }},
			{"GetByEmail", func() error { _, err := s.GetByEmail(ctx, ghost.Email); return err }},
			{"Update", func() error {
				_, err := s.Update(ctx, ghost.ID, user.Change{DisplayName: &ghost.DisplayName})
				return err
			}},
			{"Update roles", func() error { _, err := s.Update(ctx, ghost.ID, user.Change{Roles: &ghost.Roles}); return err }},
			{"Delete", func() error { return s.Delete(ctx, ghost.ID, 0) }},
			{"EndSessions", func() error { _, err := s.EndSessions(ctx, ghost.ID); return err }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.call()
				if !errors.Is(err, user.ErrNotFound) {
					t.Fatalf("%s = %v, want ErrNotFound", tt.name, err)
				}
				assertClean(t, err)
			})
		}
		if _, err := s.Get(ctx, existing.ID); err != nil {
			t.Errorf("the existing user was affected: %v", err)
		}
	})
}

func TestListPagination(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s user.Store, _ *database.DB) {
		const total = 23
		var ids []string
		var users []user.User
		for i := range total {
			u := newUser(t, fmt.Sprintf("user%02d@example.com", i))
			users = append(users, u)
			ids = append(ids, u.ID)
		}
		// Insertion order must not matter, only id order.
		rng := rand.New(rand.NewPCG(1, 2))
		rng.Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })
		for _, u := range users {
			mustCreate(t, ctx, s, u)
		}
		slices.Sort(ids)

		for _, pageSize := range []int{1, 4, 5, 22, 23, 24, 100} {
			t.Run(fmt.Sprintf("page size %d", pageSize), func(t *testing.T) {
				var got []string
				after := ""
				for pages := 0; ; pages++ {
					if pages > total+1 {
						t.Fatalf("no end after %d pages", pages)
					}
					page, err := s.List(ctx, after, pageSize)
					if err != nil {
						t.Fatalf("List(%q, %d): %v", after, pageSize, err)
					}
					if len(page) > pageSize {
						t.Fatalf("List returned %d users, limit %d", len(page), pageSize)
					}
					for _, u := range page {
						got = append(got, u.ID)
					}
					if len(page) < pageSize {
						break
					}
					after = page[len(page)-1].ID
				}
				if !slices.Equal(got, ids) {
					t.Errorf("paged ids (%d) differ from all ids in order (%d):\n got %v\nwant %v", len(got), len(ids), got, ids)
				}
			})
		}

		t.Run("after the last id", func(t *testing.T) {
			page, err := s.List(ctx, ids[len(ids)-1], 10)
			if err != nil || len(page) != 0 {
				t.Errorf("List after last = %d users, %v; want none", len(page), err)
			}
		})
		t.Run("non-positive limit", func(t *testing.T) {
			for _, limit := range []int{0, -1} {
				if _, err := s.List(ctx, "", limit); err == nil {
					t.Errorf("List(limit %d) succeeded, want an error", limit)
				}
			}
		})
		t.Run("full user fields", func(t *testing.T) {
			page, err := s.List(ctx, "", 1)
			if err != nil || len(page) != 1 {
				t.Fatalf("List = %v, %v", page, err)
			}
			want, err := s.Get(ctx, ids[0])
			if err != nil {
				t.Fatal(err)
			}
			assertUser(t, page[0], want)
		})
	})
}

func ptr[T any](v T) *T { return &v }

func TestUpdate(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s user.Store, _ *database.DB) {
		alice := mustCreate(t, ctx, s, newUser(t, "alice@example.com"))
		bob := mustCreate(t, ctx, s, newUser(t, "bob@example.com"))
		mustCreate(t, ctx, s, withRoles(newUser(t, "root@example.com"), user.RoleAdmin))
		newHash := "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdG5ld3NhbHQ$bmV3a2V5bmV3a2V5bmV3a2V5bmV3a2V5bmV3a2U"

		tests := []struct {
			name    string
			change  user.Change
			apply   func(u *user.User) // what the change must do to the stored user
			wantErr error
		}{
			{"every mutable field", user.Change{
				Email: ptr("alice.new@example.com"), DisplayName: ptr("Alice N."), Roles: ptr([]string{user.RoleAdmin}),
				PasswordHash: ptr(newHash), EndSessions: true,
			}, func(u *user.User) {
				u.Email, u.DisplayName, u.Roles, u.PasswordHash = "alice.new@example.com", "Alice N.", []string{user.RoleAdmin}, newHash
				u.SessionVersion++
			}, nil},
			{"display name only", user.Change{DisplayName: ptr("Only the name")}, func(u *user.User) { u.DisplayName = "Only the name" }, nil},
			{"roles removed", user.Change{Roles: ptr([]string{})}, func(u *user.User) { u.Roles = nil }, nil},
			{"empty display name is a value, not absence", user.Change{DisplayName: ptr("")}, func(u *user.User) { u.DisplayName = "" }, nil},
			{"own email in another case", user.Change{Email: ptr("ALICE.NEW@example.com")}, func(u *user.User) { u.Email = "ALICE.NEW@example.com" }, nil},
			{"email of another user", user.Change{Email: ptr(bob.Email)}, nil, user.ErrEmailTaken},
			{"email of another user in another case", user.Change{Email: ptr("BOB@example.com")}, nil, user.ErrEmailTaken},
			{"stale etag", user.Change{DisplayName: ptr("stale"), IfVersion: 1}, nil, user.ErrStale},
			{"stale etag with roles", user.Change{Roles: ptr([]string{}), IfVersion: 1}, nil, user.ErrStale},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before, err := s.Get(ctx, alice.ID)
				if err != nil {
					t.Fatal(err)
				}
				ch := tt.change
				ch.UpdateTime = before.UpdateTime.Add(time.Minute)
				got, err := s.Update(ctx, alice.ID, ch)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Update = %v, want %v", err, tt.wantErr)
				}
				stored, getErr := s.Get(ctx, alice.ID)
				if getErr != nil {
					t.Fatal(getErr)
				}
				want := before
				if tt.wantErr == nil {
					tt.apply(&want)
					want.Version++
					want.UpdateTime = ch.UpdateTime
					assertUser(t, got, want)
				} else {
					assertClean(t, err)
				}
				assertUser(t, stored, want)
			})
		}
		if got, err := s.Get(ctx, bob.ID); err != nil || !reflect.DeepEqual(got, bob) {
			t.Errorf("bob changed: %+v, %v", got, err)
		}
		if _, err := s.Update(ctx, newID(t), user.Change{DisplayName: ptr("x")}); !errors.Is(err, user.ErrNotFound) {
			t.Errorf("Update of an unknown id = %v, want ErrNotFound", err)
		}
		if _, err := s.Update(ctx, newID(t), user.Change{Roles: ptr([]string{})}); !errors.Is(err, user.ErrNotFound) {
			t.Errorf("Update of roles of an unknown id = %v, want ErrNotFound", err)
		}
	})
}

func withRoles(u user.User, roles ...string) user.User {
	u.Roles = roles
	return u
}

// TestUpdateAtTheCurrentEtag: a change conditional on the version read
// applies once; the same condition again is stale and writes nothing.
func TestUpdateAtTheCurrentEtag(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s user.Store, _ *database.DB) {
		u := mustCreate(t, ctx, s, newUser(t, "etag@example.com"))
		got, err := s.Update(ctx, u.ID, user.Change{DisplayName: ptr("first"), IfVersion: u.Version})
		if err != nil || got.Version != u.Version+1 {
			t.Fatalf("Update at the current version = %+v, %v", got, err)
		}
		if _, err := s.Update(ctx, u.ID, user.Change{DisplayName: ptr("second"), IfVersion: u.Version}); !errors.Is(err, user.ErrStale) {
			t.Fatalf("Update at the old version = %v, want ErrStale", err)
		}
		if err := s.Delete(ctx, u.ID, u.Version); !errors.Is(err, user.ErrStale) {
			t.Fatalf("Delete at the old version = %v, want ErrStale", err)
		}
		if stored, _ := s.Get(ctx, u.ID); stored.DisplayName != "first" {
			t.Fatalf("display name = %q, want first", stored.DisplayName)
		}
		if err := s.Delete(ctx, u.ID, got.Version); err != nil {
			t.Fatalf("Delete at the current version: %v", err)
		}
	})
}

// TestDeleteAtAnEtagRacingAnotherWrite: on PostgreSQL a rename (which takes
// no lock beyond its row) commits while an etag-conditional Delete waits
// for that row. The Delete must then see the new version and delete
// nothing. (SQLite runs write transactions one at a time, so the race
// cannot happen there.)
func TestDeleteAtAnEtagRacingAnotherWrite(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *database.DB) {
		if db.Dialect() != database.DialectPostgres {
			t.Skip("SQLite serialises write transactions")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s := store.New(db)
		u := mustCreate(t, ctx, s, newUser(t, "etag-race@example.com"))
		tx, err := db.SQL().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		// What a rename does, not yet committed: it holds the row.
		if _, err := tx.ExecContext(ctx, `UPDATE users SET display_name = 'renamed', version = version + 1 WHERE id = $1`, u.ID); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Delete(ctx, u.ID, u.Version) }()
		// Wait until the Delete is blocked on the row lock: it has read
		// version 1 and now waits for the rename.
		for {
			var waiting int
			if err := db.SQL().QueryRowContext(ctx,
				`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM users%'`).Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			if waiting > 0 {
				break
			}
			select {
			case err := <-done:
				t.Fatalf("Delete returned %v before the rename committed", err)
			case <-time.After(10 * time.Millisecond):
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, user.ErrStale) {
			t.Fatalf("Delete at etag %d after a rename to %d = %v, want ErrStale", u.Version, u.Version+1, err)
		}
		if got, err := s.Get(ctx, u.ID); err != nil || got.DisplayName != "renamed" {
			t.Fatalf("user after the refused Delete = %+v, %v", got, err)
		}
	})
}

func TestDelete(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s user.Store, _ *database.DB) {
		gone := mustCreate(t, ctx, s, newUser(t, "gone@example.com"))
		kept := mustCreate(t, ctx, s, newUser(t, "kept@example.com"))

		if err := s.Delete(ctx, gone.ID, 0); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Get(ctx, gone.ID); !errors.Is(err, user.ErrNotFound) {
			t.Errorf("Get after Delete = %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, gone.ID, 0); !errors.Is(err, user.ErrNotFound) {
			t.Errorf("second Delete = %v, want ErrNotFound", err)
		}
		if _, err := s.Get(ctx, kept.ID); err != nil {
			t.Errorf("Delete removed another user: %v", err)
		}
		// The email is free again.
		mustCreate(t, ctx, s, newUser(t, "gone@example.com"))
	})
}

// TestLastAdmin: the role can leave an admin, and an admin can be deleted,
// only while another admin remains. Where no admin exists at all (no
// bootstrap admin configured), plain users come and go freely.
func TestLastAdmin(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s user.Store, _ *database.DB) {
		plain := mustCreate(t, ctx, s, newUser(t, "plain@example.com"))
		if _, err := s.Update(ctx, plain.ID, user.Change{Roles: ptr([]string{})}); err != nil {
			t.Fatalf("roles of a plain user, no admin anywhere: %v", err)
		}
		if err := s.Delete(ctx, plain.ID, 0); err != nil {
			t.Fatalf("delete a plain user, no admin anywhere: %v", err)
		}
		a := mustCreate(t, ctx, s, withRoles(newUser(t, "a@example.com"), user.RoleAdmin))
		b := mustCreate(t, ctx, s, withRoles(newUser(t, "b@example.com"), user.RoleAdmin))
		if _, err := s.Update(ctx, a.ID, user.Change{Roles: ptr([]string{})}); err != nil {
			t.Fatalf("demote one of two admins: %v", err)
		}
		if _, err := s.Update(ctx, b.ID, user.Change{Roles: ptr([]string{})}); !errors.Is(err, user.ErrLastAdmin) {
			t.Fatalf("demote the last admin = %v, want ErrLastAdmin", err)
		}
		if err := s.Delete(ctx, b.ID, 0); !errors.Is(err, user.ErrLastAdmin) {
			t.Fatalf("delete the last admin = %v, want ErrLastAdmin", err)
		}
		if _, err := s.Update(ctx, b.ID, user.Change{Roles: ptr([]string{user.RoleAdmin}), DisplayName: ptr("still admin")}); err != nil {
			t.Fatalf("the last admin keeping its role: %v", err)
		}
		if got, _ := s.Get(ctx, b.ID); !got.HasRole(user.RoleAdmin) || got.DisplayName != "still admin" {
			t.Fatalf("last admin after refused changes = %+v", got)
		}
		if err := s.Delete(ctx, a.ID, 0); err != nil {
			t.Fatalf("delete a former admin: %v", err)
		}
	})
}

// TestConcurrentDemotionsLeaveAnAdmin: two admins remove each other's role
// (or delete each other) at the same moment, many times over. However the
// two transactions interleave, one admin always remains: on PostgreSQL the
// advisory lock orders them, on SQLite BEGIN IMMEDIATE does.
func TestConcurrentDemotionsLeaveAnAdmin(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s user.Store, db *database.DB) {
		for round := range 30 {
			a := mustCreate(t, ctx, s, withRoles(newUser(t, fmt.Sprintf("a%d@example.com", round)), user.RoleAdmin))
			b := mustCreate(t, ctx, s, withRoles(newUser(t, fmt.Sprintf("b%d@example.com", round)), user.RoleAdmin))
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, id := range []string{a.ID, b.ID} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if round%2 == 0 {
						_, errs[i] = s.Update(ctx, id, user.Change{Roles: ptr([]string{})})
					} else {
						errs[i] = s.Delete(ctx, id, 0)
					}
				}()
			}
			wg.Wait()
			refused := 0
			for _, err := range errs {
				switch {
				case errors.Is(err, user.ErrLastAdmin):
					refused++
				case err != nil:
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if n := countAdmins(t, ctx, db); n != 1 || refused != 1 {
				t.Fatalf("round %d: %d admins left, %d refusals; want 1 and 1", round, n, refused)
			}
			// Leave no admin behind for the next round.
			// (behind a cache: the deleted ids are never read again).
			if _, err := db.SQL().ExecContext(ctx, `DELETE FROM users`); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func countAdmins(t *testing.T, ctx context.Context, db *database.DB) int {
	t.Helper()
	q := `SELECT count(*) FROM users, json_each(users.roles) r WHERE r.value = 'admin'`
	if db.Dialect() == database.DialectPostgres {
		q = `SELECT count(*) FROM users WHERE roles @> '["admin"]'`
	}
	var n int
	if err := db.SQL().QueryRowContext(ctx, q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestNoLostUpdates replays the race of the account takeover report: an
// admin demotes a user and resets its password while the user renames
// itself in a loop. Before, each write put back every column it had read,
// and the user's rename undid the admin's change in 7 of 12 tries. Every
// change now writes only its own fields, so in every round both survive.
func TestNoLostUpdates(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s user.Store, _ *database.DB) {
		const rounds = 100
		lost := 0
		mustCreate(t, ctx, s, withRoles(newUser(t, "root@example.com"), user.RoleAdmin))
		for round := range rounds {
			u := mustCreate(t, ctx, s, withRoles(newUser(t, fmt.Sprintf("racer%d@example.com", round)), user.RoleAdmin))
			start := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := range 5 {
					if _, err := s.Update(ctx, u.ID, user.Change{DisplayName: ptr(fmt.Sprintf("name %d", i))}); err != nil {
						t.Errorf("rename: %v", err)
						return
					}
				}
			}()
			close(start)
			reset := fmt.Sprintf("reset-hash-%d", round)
			_, err := s.Update(ctx, u.ID, user.Change{Roles: ptr([]string{}), PasswordHash: &reset, EndSessions: true})
			wg.Wait()
			if err != nil {
				t.Fatalf("round %d: admin change: %v", round, err)
			}
			got, err := s.Get(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.HasRole(user.RoleAdmin) || got.PasswordHash != reset || got.SessionVersion != 1 || got.DisplayName != "name 4" {
				lost++
				t.Logf("round %d: %+v", round, got)
			}
		}
		if lost > 0 {
			t.Errorf("a change was undone in %d of %d rounds", lost, rounds)
		}
	})
}

// TestEndSessions moves the session version on and nothing else.
func TestEndSessions(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s user.Store, _ *database.DB) {
		u := mustCreate(t, ctx, s, newUser(t, "ends@example.com"))
		for want := int64(1); want <= 2; want++ {
			v, err := s.EndSessions(ctx, u.ID)
			if err != nil || v != want {
				t.Fatalf("EndSessions = %d, %v; want %d", v, err, want)
			}
		}
		got, err := s.Get(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := u
		want.SessionVersion = 2
		assertUser(t, got, want)
		if _, err := s.EndSessions(ctx, newID(t)); !errors.Is(err, user.ErrNotFound) {
			t.Fatalf("EndSessions of an unknown id = %v, want ErrNotFound", err)
		}
	})
}

func TestConcurrentCreatesOfOneEmail(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s user.Store, _ *database.DB) {
		const n = 12
		emails := []string{"race@example.com", "RACE@example.com", "Race@Example.com"}
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			u := newUser(t, emails[i%len(emails)])
			wg.Go(func() {
				<-start
				errs[i] = s.Create(ctx, u)
			})
		}
		close(start)
		wg.Wait()

		created := 0
		for i, err := range errs {
			switch {
			case err == nil:
				created++
			case errors.Is(err, user.ErrEmailTaken):
			default:
				t.Errorf("Create #%d = %v, want nil or ErrEmailTaken", i, err)
			}
		}
		if created != 1 {
			t.Errorf("%d creates succeeded, want exactly 1", created)
		}
		page, err := s.List(ctx, "", n)
		if err != nil || len(page) != 1 {
			t.Errorf("List = %d users, %v; want 1", len(page), err)
		}
	})
}

func TestTimeRoundTrip(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s user.Store, _ *database.DB) {
		kolkata := time.FixedZone("IST", 5*3600+1800)
		tests := []struct {
			name string
			in   time.Time
			want time.Time
		}{
			{"microseconds", time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC), time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)},
			{"nanoseconds truncated", time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC), time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)},
			{"whole second", time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC), time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)},
			{"other zone", time.Date(2025, 3, 4, 10, 36, 7, 1000, kolkata), time.Date(2025, 3, 4, 5, 6, 7, 1000, time.UTC)},
			{"epoch plus one microsecond", time.Unix(0, 1000).UTC(), time.Unix(0, 1000).UTC()},
			{"far future", time.Date(2999, 12, 31, 23, 59, 59, 999999000, time.UTC), time.Date(2999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
			{"monotonic reading", time.Now(), time.Time{}}, // want: the same instant, truncated
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				want := tt.want
				if want.IsZero() {
					want = tt.in.UTC().Truncate(time.Microsecond)
				}
				u := newUser(t, fmt.Sprintf("time%d@example.com", i))
				u.CreateTime, u.UpdateTime = tt.in, tt.in
				mustCreate(t, ctx, s, u)
				got, err := s.Get(ctx, u.ID)
				if err != nil {
					t.Fatal(err)
				}
				for name, tm := range map[string]time.Time{"create": got.CreateTime, "update": got.UpdateTime} {
					if !tm.Equal(want) || tm.Location() != time.UTC {
						t.Errorf("%s time = %v (%v), want %v in UTC", name, tm, tm.Location(), want)
					}
				}

				// Update writes update_time through the same path.
				later := tt.in.Add(90*time.Minute + 5*time.Microsecond)
				if _, err := s.Update(ctx, u.ID, user.Change{UpdateTime: later}); err != nil {
					t.Fatal(err)
				}
				got, err = s.Get(ctx, u.ID)
				if err != nil {
					t.Fatal(err)
				}
				if wantLater := later.UTC().Truncate(time.Microsecond); !got.UpdateTime.Equal(wantLater) {
					t.Errorf("updated time = %v, want %v", got.UpdateTime, wantLater)
				}
				if !got.CreateTime.Equal(want) {
					t.Errorf("create time changed by Update: %v, want %v", got.CreateTime, want)
				}
			})
		}

		t.Run("zero times mean now", func(t *testing.T) {
			before := time.Now().UTC().Truncate(time.Microsecond)
			u := newUser(t, "zero@example.com")
			u.CreateTime, u.UpdateTime = time.Time{}, time.Time{}
			mustCreate(t, ctx, s, u)
			after := time.Now().UTC()
			got, err := s.Get(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			for name, tm := range map[string]time.Time{"create": got.CreateTime, "update": got.UpdateTime} {
				if tm.Before(before) || tm.After(after) {
					t.Errorf("%s time = %v, want within [%v, %v]", name, tm, before, after)
				}
			}
		})
	})
}

func TestPing(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s user.Store, _ *database.DB) {
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

func TestUnavailableAfterClose(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s user.Store, db *database.DB) {
		u := mustCreate(t, ctx, s, newUser(t, "closed@example.com"))
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			call func() error
		}{
			{"Ping", func() error { return s.Ping(ctx) }},
			{"Get", func() error { _, err := s.Get(ctx, u.ID); return err }},
			{"GetByEmail", func() error { _, err := s.GetByEmail(ctx, u.Email); return err }},
			{"List", func() error { _, err := s.List(ctx, "", 10); return err }},
			{"Create", func() error { return s.Create(ctx, newUser(t, "new@example.com")) }},
			{"Update", func() error { _, err := s.Update(ctx, u.ID, user.Change{DisplayName: &u.DisplayName}); return err }},
			{"Update roles", func() error { _, err := s.Update(ctx, u.ID, user.Change{Roles: &u.Roles}); return err }},
			{"Delete", func() error { return s.Delete(ctx, u.ID, 0) }},
			{"EndSessions", func() error { _, err := s.EndSessions(ctx, u.ID); return err }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.call()
				if !errors.Is(err, user.ErrUnavailable) {
					t.Fatalf("%s on a closed database = %v, want ErrUnavailable", tt.name, err)
				}
				if errors.Is(err, user.ErrNotFound) || errors.Is(err, user.ErrEmailTaken) {
					t.Errorf("%s = %v also matches another sentinel", tt.name, err)
				}
				assertClean(t, err)
			})
		}
	})
}
