package store_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/gatehouse-dev/gatehouse/services/internal/auth"
	"github.com/gatehouse-dev/gatehouse/services/internal/auth/store"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database/dbtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	idle     = time.Hour
	lifetime = 30 * 24 * time.Hour
)

// t0 has nanoseconds, which the store must cut to microseconds.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

// sentinels are the errors Rotate may return; exactly the expected one
// must match.
var sentinels = []error{
	auth.ErrTokenNotFound, auth.ErrTokenExpired, auth.ErrTokenRevoked,
	auth.ErrTokenReused, auth.ErrTokenJustRotated, auth.ErrUnavailable,
}

// each runs fn on a fresh, migrated SQLite and PostgreSQL database.
func each(t *testing.T, fn func(t *testing.T, ctx context.Context, s *store.Store, db *database.DB)) {
	t.Helper()
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *database.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		fn(t, ctx, store.New(db), db)
	})
}

func newID(t *testing.T) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// newHash returns the hex SHA-256 of 32 random bytes, as the service does.
func newHash(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func tokenAt(t *testing.T, now time.Time) auth.RefreshToken {
	t.Helper()
	return auth.RefreshToken{Hash: newHash(t), IssuedAt: now, IdleExpiresAt: now.Add(idle)}
}

// createFamily stores a family created at now with roles and returns it
// as the store must give it back, with the hash of its first token.
func createFamily(t *testing.T, ctx context.Context, s *store.Store, now time.Time, roles ...string) (auth.Family, string) {
	t.Helper()
	f := auth.Family{
		ID:        newID(t),
		UserID:    newID(t),
		Roles:     roles,
		CreatedAt: now,
		ExpiresAt: now.Add(lifetime),
	}
	first := tokenAt(t, now)
	if err := s.CreateFamily(ctx, f, first); err != nil {
		t.Fatalf("CreateFamily: %v", err)
	}
	f.CreatedAt = f.CreatedAt.UTC().Truncate(time.Microsecond)
	f.ExpiresAt = f.ExpiresAt.UTC().Truncate(time.Microsecond)
	return f, first.Hash
}

// mustRotate rotates hash at now with no grace and returns the next hash.
func mustRotate(t *testing.T, ctx context.Context, s *store.Store, hash string, now time.Time) string {
	t.Helper()
	next := tokenAt(t, now)
	if _, err := s.Rotate(ctx, hash, next, now, 0); err != nil {
		t.Fatalf("Rotate at %v: %v", now, err)
	}
	return next.Hash
}

// assertErr checks that err matches want and no other sentinel, and that
// its message carries no SQL.
func assertErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v, want %v", what, err, want)
	}
	for _, other := range sentinels {
		if other != want && errors.Is(err, other) { //nolint:errorlint // comparing sentinel identities, not a returned error
			t.Errorf("%s = %v also matches %v", what, err, other)
		}
	}
	assertClean(t, err)
}

// assertClean checks that an error a client might see through its message
// carries no SQL.
func assertClean(t *testing.T, err error) {
	t.Helper()
	for _, word := range []string{"SELECT", "INSERT", "UPDATE refresh", "DELETE FROM", "WHERE"} {
		if strings.Contains(err.Error(), word) {
			t.Errorf("error %q contains SQL (%s)", err, word)
		}
	}
}

func assertActive(t *testing.T, ctx context.Context, s *store.Store, familyID string, want int) {
	t.Helper()
	n, err := s.ActiveTokens(ctx, familyID)
	if err != nil {
		t.Fatalf("ActiveTokens: %v", err)
	}
	if n != want {
		t.Errorf("ActiveTokens = %d, want %d", n, want)
	}
}

// storedToken is a row of refresh_tokens, read behind the store's back.
type storedToken struct {
	familyID                    string
	issuedAt, idleAt, rotatedAt time.Time
}

func readToken(t *testing.T, ctx context.Context, db *database.DB, hash string) (storedToken, bool) {
	t.Helper()
	var (
		tok     storedToken
		rotated sql.NullTime
	)
	err := db.SQL().QueryRowContext(ctx,
		`SELECT family_id, issued_at, idle_expires_at, rotated_at FROM refresh_tokens WHERE hash = $1`, hash).
		Scan(&tok.familyID, &tok.issuedAt, &tok.idleAt, &rotated)
	if errors.Is(err, sql.ErrNoRows) {
		return storedToken{}, false
	}
	if err != nil {
		t.Fatalf("read token: %v", err)
	}
	tok.issuedAt, tok.idleAt = tok.issuedAt.UTC(), tok.idleAt.UTC()
	if rotated.Valid {
		tok.rotatedAt = rotated.Time.UTC()
	}
	return tok, true
}

// revokedAt reads the family's revocation time; zero while active.
func revokedAt(t *testing.T, ctx context.Context, db *database.DB, familyID string) time.Time {
	t.Helper()
	var at sql.NullTime
	if err := db.SQL().QueryRowContext(ctx,
		`SELECT revoked_at FROM refresh_families WHERE id = $1`, familyID).Scan(&at); err != nil {
		t.Fatalf("read family %s: %v", familyID, err)
	}
	if !at.Valid {
		return time.Time{}
	}
	return at.Time.UTC()
}

func countRows(t *testing.T, ctx context.Context, db *database.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

func tokensOf(t *testing.T, ctx context.Context, db *database.DB, familyID string) int {
	t.Helper()
	return countRows(t, ctx, db, `SELECT count(*) FROM refresh_tokens WHERE family_id = $1`, familyID)
}

func TestCreateAndRotateChain(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s *store.Store, db *database.DB) {
		tests := []struct {
			name  string
			start time.Time
			roles []string
		}{
			{"no roles", t0, nil},
			{"one role", t0, []string{"admin"}},
			{"two roles, local time zone", t0.In(time.FixedZone("CEST", 2*60*60)), []string{"service", "admin"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				want, hash := createFamily(t, ctx, s, tt.start, tt.roles...)
				assertActive(t, ctx, s, want.ID, 1)
				if tok, ok := readToken(t, ctx, db, hash); !ok ||
					!tok.issuedAt.Equal(want.CreatedAt) || tok.issuedAt.Location() != time.UTC ||
					!tok.idleAt.Equal(tt.start.Add(idle).Truncate(time.Microsecond)) || !tok.rotatedAt.IsZero() {
					t.Fatalf("first token stored as %+v (found %v)", tok, ok)
				}

				old := []string{hash}
				for step := 1; step <= 4; step++ {
					now := tt.start.Add(time.Duration(step) * 10 * time.Minute)
					next := tokenAt(t, now)
					got, err := s.Rotate(ctx, hash, next, now, 0)
					if err != nil {
						t.Fatalf("step %d: Rotate: %v", step, err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("step %d: family\n got %+v\nwant %+v", step, got, want)
					}
					if got.CreatedAt.Location() != time.UTC || got.ExpiresAt.Location() != time.UTC {
						t.Errorf("step %d: family times not in UTC", step)
					}
					assertActive(t, ctx, s, want.ID, 1)

					rotated, _ := readToken(t, ctx, db, hash)
					if wantAt := now.UTC().Truncate(time.Microsecond); !rotated.rotatedAt.Equal(wantAt) {
						t.Errorf("step %d: rotated_at = %v, want %v", step, rotated.rotatedAt, wantAt)
					}
					stored, ok := readToken(t, ctx, db, next.Hash)
					if !ok || stored.familyID != want.ID || !stored.rotatedAt.IsZero() ||
						!stored.issuedAt.Equal(now.Truncate(time.Microsecond)) {
						t.Errorf("step %d: next token stored as %+v (found %v)", step, stored, ok)
					}

					// Every earlier token stops working. Within the grace
					// window that changes nothing, so the chain goes on.
					hash = next.Hash
					for i, h := range old {
						_, err := s.Rotate(ctx, h, tokenAt(t, now), now, time.Hour)
						assertErr(t, fmt.Sprintf("step %d: Rotate(token %d)", step, i), err, auth.ErrTokenJustRotated)
					}
					old = append(old, hash)
					assertActive(t, ctx, s, want.ID, 1)
				}
				if got := tokensOf(t, ctx, db, want.ID); got != 5 {
					t.Errorf("family holds %d tokens, want 5", got)
				}
				// The newest still works.
				mustRotate(t, ctx, s, hash, tt.start.Add(time.Hour))
			})
		}
	})
}

func TestReuseRevokesFamily(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s *store.Store, db *database.DB) {
		tests := []struct {
			name  string
			grace time.Duration
			after time.Duration // from the rotation to the reuse
		}{
			{"no grace, same instant", 0, 0},
			{"no grace, later", 0, time.Minute},
			{"grace over exactly", time.Minute, time.Minute},
			{"grace long over", time.Minute, 2 * time.Hour},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f, a := createFamily(t, ctx, s, t0)
				t1 := t0.Add(5 * time.Minute)
				b := mustRotate(t, ctx, s, a, t1)

				reuseAt := t1.Add(tt.after)
				unused := tokenAt(t, reuseAt)
				_, err := s.Rotate(ctx, a, unused, reuseAt, tt.grace)
				assertErr(t, "reuse of A", err, auth.ErrTokenReused)
				if got := revokedAt(t, ctx, db, f.ID); !got.Equal(reuseAt.Truncate(time.Microsecond)) {
					t.Errorf("family revoked_at = %v, want %v", got, reuseAt)
				}

				// The newest token dies with its family, and so does A.
				_, err = s.Rotate(ctx, b, tokenAt(t, reuseAt), reuseAt.Add(time.Second), 0)
				assertErr(t, "B after reuse", err, auth.ErrTokenRevoked)
				_, err = s.Rotate(ctx, a, tokenAt(t, reuseAt), reuseAt.Add(time.Hour), 0)
				assertErr(t, "A again", err, auth.ErrTokenRevoked)

				if _, ok := readToken(t, ctx, db, unused.Hash); ok {
					t.Error("the token offered with the reused one was stored")
				}
				if got := tokensOf(t, ctx, db, f.ID); got != 2 {
					t.Errorf("family holds %d tokens, want 2", got)
				}
				assertActive(t, ctx, s, f.ID, 1) // B: never rotated, revoked with the family
			})
		}
	})
}

func TestGraceWindow(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s *store.Store, db *database.DB) {
		tests := []struct {
			name  string
			after time.Duration // from the rotation to the second presentation
		}{
			{"same instant", 0},
			{"within", 30 * time.Second},
			{"just within", time.Minute - time.Microsecond},
			{"clock behind the winner's", -time.Second},
		}
		const grace = time.Minute
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f, a := createFamily(t, ctx, s, t0)
				t1 := t0.Add(5 * time.Minute)
				b := mustRotate(t, ctx, s, a, t1)

				at := t1.Add(tt.after)
				unused := tokenAt(t, at)
				_, err := s.Rotate(ctx, a, unused, at, grace)
				assertErr(t, "A within grace", err, auth.ErrTokenJustRotated)

				if got := revokedAt(t, ctx, db, f.ID); !got.IsZero() {
					t.Errorf("family revoked at %v", got)
				}
				if _, ok := readToken(t, ctx, db, unused.Hash); ok {
					t.Error("the token offered within grace was stored")
				}
				if tok, _ := readToken(t, ctx, db, a); !tok.rotatedAt.Equal(t1.Truncate(time.Microsecond)) {
					t.Errorf("A's rotated_at changed to %v", tok.rotatedAt)
				}
				assertActive(t, ctx, s, f.ID, 1)
				mustRotate(t, ctx, s, b, t1.Add(time.Second)) // B still works
			})
		}
	})
}

func TestConcurrentRotate(t *testing.T) {
	const (
		goroutines = 20
		rounds     = 3
	)
	each(t, func(t *testing.T, ctx context.Context, s *store.Store, db *database.DB) {
		tests := []struct {
			name       string
			grace      time.Duration
			losersMay  []error // what each loser may get
			losersMust error   // at least one loser gets this
			revoked    bool
		}{
			{"no grace", 0, []error{auth.ErrTokenReused, auth.ErrTokenRevoked}, auth.ErrTokenReused, true},
			{"grace", time.Minute, []error{auth.ErrTokenJustRotated}, auth.ErrTokenJustRotated, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				for round := range rounds {
					start := time.Now()
					f, hash := createFamily(t, ctx, s, start)
					var (
						wg      sync.WaitGroup
						begin   = make(chan struct{})
						errs    = make([]error, goroutines)
						offered = make([]string, goroutines)
					)
					for i := range goroutines {
						next := tokenAt(t, start)
						offered[i] = next.Hash
						wg.Go(func() {
							<-begin
							_, errs[i] = s.Rotate(ctx, hash, next, time.Now(), tt.grace)
						})
					}
					close(begin)
					wg.Wait()

					winner, must := -1, false
					for i, err := range errs {
						switch {
						case err == nil && winner >= 0:
							t.Errorf("round %d: goroutines %d and %d both rotated the token", round, winner, i)
						case err == nil:
							winner = i
						case errors.Is(err, tt.losersMust):
							must = true
						default:
							allowed := false
							for _, want := range tt.losersMay {
								allowed = allowed || errors.Is(err, want)
							}
							if !allowed {
								t.Errorf("round %d: loser %d got %v, want one of %v", round, i, err, tt.losersMay)
							}
						}
					}
					if winner < 0 {
						t.Fatalf("round %d: no goroutine rotated the token: %v", round, errs)
					}
					if !must {
						t.Errorf("round %d: no loser got %v: %v", round, tt.losersMust, errs)
					}

					if got := tokensOf(t, ctx, db, f.ID); got != 2 {
						t.Errorf("round %d: family holds %d tokens, want 2 (first and winner's)", round, got)
					}
					if _, ok := readToken(t, ctx, db, offered[winner]); !ok {
						t.Errorf("round %d: the winner's token was not stored", round)
					}
					assertActive(t, ctx, s, f.ID, 1)
					_, err := s.Rotate(ctx, offered[winner], tokenAt(t, time.Now()), time.Now(), 0)
					if got := !revokedAt(t, ctx, db, f.ID).IsZero(); got != tt.revoked {
						t.Errorf("round %d: family revoked = %v, want %v", round, got, tt.revoked)
					}
					if tt.revoked {
						assertErr(t, "winner's token after reuse", err, auth.ErrTokenRevoked)
					} else if err != nil {
						t.Errorf("round %d: winner's token: %v", round, err)
					}
				}
			})
		}
	})
}

func TestExpiry(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s *store.Store, db *database.DB) {
		tests := []struct {
			name     string
			lifetime time.Duration // of the family
			at       time.Duration // from creation to the rotation
			wantErr  error         // nil: the rotation must succeed
		}{
			{"idle window nearly over", lifetime, idle - time.Microsecond, nil},
			{"idle window just over", lifetime, idle, auth.ErrTokenExpired},
			{"idle window long over", lifetime, 10 * idle, auth.ErrTokenExpired},
			{"family nearly over", idle / 2, idle/2 - time.Microsecond, nil},
			{"family just over", idle / 2, idle / 2, auth.ErrTokenExpired},
			{"family and idle window over", idle / 2, 2 * idle, auth.ErrTokenExpired},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f := auth.Family{ID: newID(t), UserID: newID(t), CreatedAt: t0, ExpiresAt: t0.Add(tt.lifetime)}
				first := tokenAt(t, t0)
				if err := s.CreateFamily(ctx, f, first); err != nil {
					t.Fatal(err)
				}
				now := t0.Add(tt.at)
				next := tokenAt(t, now)
				_, err := s.Rotate(ctx, first.Hash, next, now, 0)
				if tt.wantErr == nil {
					if err != nil {
						t.Fatalf("Rotate: %v", err)
					}
					return
				}
				assertErr(t, "Rotate", err, tt.wantErr)
				if _, ok := readToken(t, ctx, db, next.Hash); ok {
					t.Error("next token stored for an expired one")
				}
				if tok, _ := readToken(t, ctx, db, first.Hash); !tok.rotatedAt.IsZero() {
					t.Errorf("expired token marked rotated at %v", tok.rotatedAt)
				}
				assertActive(t, ctx, s, f.ID, 1)
				// Presented again it is still expired, not reused.
				_, err = s.Rotate(ctx, first.Hash, tokenAt(t, now), now.Add(time.Hour), 0)
				assertErr(t, "Rotate again", err, tt.wantErr)
				if got := revokedAt(t, ctx, db, f.ID); !got.IsZero() {
					t.Errorf("family revoked at %v", got)
				}
				if got := tokensOf(t, ctx, db, f.ID); got != 1 {
					t.Errorf("family holds %d tokens, want 1", got)
				}
			})
		}
	})
}

func TestRevokeFamily(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s *store.Store, db *database.DB) {
		tests := []struct {
			name    string
			through func(t *testing.T, first, current string) string // the hash to revoke with
		}{
			{"current token", func(_ *testing.T, _, current string) string { return current }},
			{"rotated token", func(_ *testing.T, first, _ string) string { return first }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f, first := createFamily(t, ctx, s, t0)
				current := mustRotate(t, ctx, s, first, t0.Add(time.Minute))
				revokeAt := t0.Add(2 * time.Minute)
				hash := tt.through(t, first, current)
				if err := s.RevokeFamily(ctx, hash, revokeAt); err != nil {
					t.Fatalf("RevokeFamily: %v", err)
				}
				if err := s.RevokeFamily(ctx, current, revokeAt.Add(time.Minute)); err != nil {
					t.Fatalf("second RevokeFamily: %v", err)
				}
				if got := revokedAt(t, ctx, db, f.ID); !got.Equal(revokeAt.Truncate(time.Microsecond)) {
					t.Errorf("revoked_at = %v, want the first revocation %v", got, revokeAt)
				}
				next := tokenAt(t, revokeAt)
				_, err := s.Rotate(ctx, current, next, revokeAt.Add(time.Minute), 0)
				assertErr(t, "Rotate after revoke", err, auth.ErrTokenRevoked)
				if _, ok := readToken(t, ctx, db, next.Hash); ok {
					t.Error("next token stored in a revoked family")
				}
				if tok, _ := readToken(t, ctx, db, current); !tok.rotatedAt.IsZero() {
					t.Errorf("token of a revoked family marked rotated at %v", tok.rotatedAt)
				}
			})
		}
		t.Run("unknown hash", func(t *testing.T) {
			err := s.RevokeFamily(ctx, newHash(t), t0)
			assertErr(t, "RevokeFamily(unknown)", err, auth.ErrTokenNotFound)
			_, err = s.Rotate(ctx, newHash(t), tokenAt(t, t0), t0, time.Minute)
			assertErr(t, "Rotate(unknown)", err, auth.ErrTokenNotFound)
		})
	})
}

// TestLookup reads a token and its family without changing either: the
// session version stored at login comes back, and a rotated token says so.
func TestLookup(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s *store.Store, db *database.DB) {
		f := auth.Family{ID: newID(t), UserID: newID(t), Roles: []string{"admin"}, SessionVersion: 3, CreatedAt: t0, ExpiresAt: t0.Add(lifetime)}
		first := tokenAt(t, t0)
		if err := s.CreateFamily(ctx, f, first); err != nil {
			t.Fatal(err)
		}
		tok, fam, err := s.Lookup(ctx, first.Hash)
		if err != nil {
			t.Fatalf("Lookup: %v", err)
		}
		if fam.ID != f.ID || fam.UserID != f.UserID || fam.SessionVersion != 3 || !fam.RevokedAt.IsZero() ||
			!tok.RotatedAt.IsZero() || tok.FamilyID != f.ID || !tok.IdleExpiresAt.Equal(first.IdleExpiresAt.Truncate(time.Microsecond)) {
			t.Fatalf("Lookup = %+v, %+v", tok, fam)
		}
		assertActive(t, ctx, s, f.ID, 1)
		mustRotate(t, ctx, s, first.Hash, t0.Add(time.Minute))
		if tok, _, err := s.Lookup(ctx, first.Hash); err != nil || !tok.RotatedAt.Equal(t0.Add(time.Minute).Truncate(time.Microsecond)) {
			t.Fatalf("Lookup of a rotated token = %+v, %v", tok, err)
		}
		_, _, err = s.Lookup(ctx, newHash(t))
		assertErr(t, "Lookup(unknown)", err, auth.ErrTokenNotFound)
	})
}

// TestRevokeUserFamilies ends the families of one user issued below a
// session version, and nothing else: not the user's newer families, not
// other users', and an already revoked family keeps its first time.
func TestRevokeUserFamilies(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s *store.Store, db *database.DB) {
		userID, other := newID(t), newID(t)
		create := func(uid string, version int64) (string, string) {
			f := auth.Family{ID: newID(t), UserID: uid, SessionVersion: version, CreatedAt: t0, ExpiresAt: t0.Add(lifetime)}
			first := tokenAt(t, t0)
			if err := s.CreateFamily(ctx, f, first); err != nil {
				t.Fatal(err)
			}
			return f.ID, first.Hash
		}
		old1, old1Hash := create(userID, 0)
		old2, _ := create(userID, 1)
		already, alreadyHash := create(userID, 0)
		if err := s.RevokeFamily(ctx, alreadyHash, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		current, currentHash := create(userID, 2)
		others, _ := create(other, 0)

		at := t0.Add(30 * time.Minute)
		n, err := s.RevokeUserFamilies(ctx, userID, 2, at)
		if err != nil || n != 2 {
			t.Fatalf("RevokeUserFamilies = %d, %v; want 2", n, err)
		}
		for id, want := range map[string]time.Time{old1: at, old2: at, already: t0.Add(time.Minute), current: {}, others: {}} {
			if got := revokedAt(t, ctx, db, id); !got.Equal(want.Truncate(time.Microsecond)) {
				t.Errorf("family %s revoked at %v, want %v", id, got, want)
			}
		}
		_, err = s.Rotate(ctx, old1Hash, tokenAt(t, at), at, 0)
		assertErr(t, "Rotate of an ended family", err, auth.ErrTokenRevoked)
		mustRotate(t, ctx, s, currentHash, at)
		if n, err := s.RevokeUserFamilies(ctx, newID(t), math.MaxInt64, at); err != nil || n != 0 {
			t.Fatalf("RevokeUserFamilies of a user without families = %d, %v", n, err)
		}
	})
}

func TestPurgeExpired(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s *store.Store, db *database.DB) {
		const retention = 24 * time.Hour
		now := t0.Add(lifetime)
		tests := []struct {
			name    string
			created time.Time
			revoked time.Time // zero: not revoked
			purged  bool
		}{
			{"active", t0.Add(time.Hour), time.Time{}, false},
			{"expiring exactly now", t0, time.Time{}, false},
			{"expired", t0.Add(-time.Microsecond), time.Time{}, true},
			{"revoked within retention", t0.Add(time.Hour), now.Add(-retention + time.Second), false},
			{"revoked long ago", t0.Add(time.Hour), now.Add(-retention - time.Second), true},
			{"expired and revoked", t0.Add(-time.Hour), t0.Add(time.Minute), true},
			// SQLite compares stored times as text, whose fraction loses
			// trailing zeros: .0 against .123456 and .5 against .123456.
			{"expired on the whole second", t0.Truncate(time.Second), time.Time{}, true},
			{"expiring half a second later", t0.Truncate(time.Second).Add(500 * time.Millisecond), time.Time{}, false},
		}
		// Two per statement: the four to purge need two full statements
		// and a third that comes back empty.
		store.SetPurgeBatch(t, 2)
		type fixture struct {
			family  auth.Family
			current string
		}
		fixtures := make([]fixture, len(tests))
		wantPurged := int64(0)
		for i, tt := range tests {
			f, hash := createFamily(t, ctx, s, tt.created)
			hash = mustRotate(t, ctx, s, hash, tt.created.Add(time.Minute))
			if !tt.revoked.IsZero() {
				if err := s.RevokeFamily(ctx, hash, tt.revoked); err != nil {
					t.Fatal(err)
				}
			}
			if tt.purged {
				wantPurged++
			}
			fixtures[i] = fixture{f, hash}
		}

		n, err := s.PurgeExpired(ctx, now, retention)
		if err != nil {
			t.Fatalf("PurgeExpired: %v", err)
		}
		if n != wantPurged {
			t.Errorf("PurgeExpired = %d, want %d", n, wantPurged)
		}
		for i, tt := range tests {
			fam := fixtures[i].family
			families := countRows(t, ctx, db, `SELECT count(*) FROM refresh_families WHERE id = $1`, fam.ID)
			tokens := tokensOf(t, ctx, db, fam.ID)
			if tt.purged && (families != 0 || tokens != 0) {
				t.Errorf("%s: %d family rows and %d tokens left, want none", tt.name, families, tokens)
			}
			if !tt.purged && (families != 1 || tokens != 2) {
				t.Errorf("%s: %d family rows and %d tokens left, want 1 and 2", tt.name, families, tokens)
			}
		}
		if n, err := s.PurgeExpired(ctx, now, retention); err != nil || n != 0 {
			t.Errorf("second PurgeExpired = %d, %v; want 0", n, err)
		}
		// The survivor that is neither revoked nor expired still rotates.
		mustRotate(t, ctx, s, fixtures[0].current, tests[0].created.Add(2*time.Minute))
	})
}

func TestOneActiveTokenPerFamily(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s *store.Store, db *database.DB) {
		f, _ := createFamily(t, ctx, s, t0)
		insert := func(rotated any) error {
			_, err := db.SQL().ExecContext(ctx,
				`INSERT INTO refresh_tokens (hash, family_id, issued_at, idle_expires_at, rotated_at)
				 VALUES ($1, $2, $3, $4, $5)`, newHash(t), f.ID, t0, t0.Add(idle), rotated)
			return err
		}
		if err := insert(nil); !database.IsUniqueViolation(err) {
			t.Errorf("second active token in a family: %v, want a unique violation", err)
		}
		if err := insert(t0); err != nil {
			t.Errorf("rotated token next to the active one: %v", err)
		}
		assertActive(t, ctx, s, f.ID, 1)
	})
}

func TestInvalidInput(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s *store.Store, db *database.DB) {
		f, hash := createFamily(t, ctx, s, t0)
		valid := func() (auth.Family, auth.RefreshToken) {
			return auth.Family{ID: newID(t), UserID: newID(t), CreatedAt: t0, ExpiresAt: t0.Add(lifetime)}, tokenAt(t, t0)
		}
		creates := []struct {
			name string
			edit func(*auth.Family, *auth.RefreshToken)
		}{
			{"empty family id", func(f *auth.Family, _ *auth.RefreshToken) { f.ID = "" }},
			{"empty user id", func(f *auth.Family, _ *auth.RefreshToken) { f.UserID = "" }},
			{"zero expiry", func(f *auth.Family, _ *auth.RefreshToken) { f.ExpiresAt = time.Time{} }},
			{"empty hash", func(_ *auth.Family, tok *auth.RefreshToken) { tok.Hash = "" }},
			{"zero idle expiry", func(_ *auth.Family, tok *auth.RefreshToken) { tok.IdleExpiresAt = time.Time{} }},
			{"token of another family", func(_ *auth.Family, tok *auth.RefreshToken) { tok.FamilyID = f.ID }},
			{"rotated first token", func(_ *auth.Family, tok *auth.RefreshToken) { tok.RotatedAt = t0 }},
			{"taken family id", func(fam *auth.Family, _ *auth.RefreshToken) { fam.ID = f.ID }},
			{"taken hash", func(_ *auth.Family, tok *auth.RefreshToken) { tok.Hash = hash }},
		}
		for _, tt := range creates {
			t.Run("create/"+tt.name, func(t *testing.T) {
				fam, tok := valid()
				tt.edit(&fam, &tok)
				err := s.CreateFamily(ctx, fam, tok)
				if err == nil {
					t.Fatal("CreateFamily succeeded")
				}
				for _, sentinel := range sentinels {
					if errors.Is(err, sentinel) {
						t.Errorf("CreateFamily = %v, matches %v", err, sentinel)
					}
				}
				assertClean(t, err)
				if fam.ID != f.ID && countRows(t, ctx, db, `SELECT count(*) FROM refresh_families WHERE id = $1`, fam.ID) != 0 {
					t.Error("family stored despite the error")
				}
			})
		}
		rotates := []struct {
			name string
			edit func(*auth.RefreshToken)
		}{
			{"empty hash", func(tok *auth.RefreshToken) { tok.Hash = "" }},
			{"zero idle expiry", func(tok *auth.RefreshToken) { tok.IdleExpiresAt = time.Time{} }},
			{"another family", func(tok *auth.RefreshToken) { tok.FamilyID = newID(t) }},
			{"already rotated", func(tok *auth.RefreshToken) { tok.RotatedAt = t0 }},
			{"taken hash", func(tok *auth.RefreshToken) { tok.Hash = hash }},
		}
		for _, tt := range rotates {
			t.Run("rotate/"+tt.name, func(t *testing.T) {
				next := tokenAt(t, t0)
				tt.edit(&next)
				_, err := s.Rotate(ctx, hash, next, t0.Add(time.Minute), 0)
				if err == nil {
					t.Fatal("Rotate succeeded")
				}
				for _, sentinel := range sentinels {
					if errors.Is(err, sentinel) {
						t.Errorf("Rotate = %v, matches %v", err, sentinel)
					}
				}
				assertClean(t, err)
				// The failed call left the token current.
				if tok, _ := readToken(t, ctx, db, hash); !tok.rotatedAt.IsZero() {
					t.Errorf("token marked rotated at %v by a failed call", tok.rotatedAt)
				}
				assertActive(t, ctx, s, f.ID, 1)
			})
		}
		// The same family id, given explicitly, is fine.
		next := tokenAt(t, t0)
		next.FamilyID = f.ID
		if _, err := s.Rotate(ctx, hash, next, t0.Add(time.Minute), 0); err != nil {
			t.Errorf("Rotate with the family's own id: %v", err)
		}
	})
}

func TestUnavailableAfterClose(t *testing.T) {
	each(t, func(t *testing.T, ctx context.Context, s *store.Store, db *database.DB) {
		f, hash := createFamily(t, ctx, s, t0)
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping before Close: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			call func() error
		}{
			{"Ping", func() error { return s.Ping(ctx) }},
			{"CreateFamily", func() error {
				return s.CreateFamily(ctx, auth.Family{ID: newID(t), UserID: "u", ExpiresAt: t0.Add(lifetime)}, tokenAt(t, t0))
			}},
			{"Rotate", func() error {
				_, err := s.Rotate(ctx, hash, tokenAt(t, t0), t0.Add(time.Minute), 0)
				return err
			}},
			{"RevokeFamily", func() error { return s.RevokeFamily(ctx, hash, t0) }},
			{"PurgeExpired", func() error {
				_, err := s.PurgeExpired(ctx, t0, time.Hour)
				return err
			}},
			{"ActiveTokens", func() error {
				_, err := s.ActiveTokens(ctx, f.ID)
				return err
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				assertErr(t, tt.name+" on a closed database", tt.call(), auth.ErrUnavailable)
			})
		}
	})
}
