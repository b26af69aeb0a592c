package user_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/identity"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/rpcerr"
	"github.com/gatehouse-dev/gatehouse/services/internal/user"
	"github.com/gatehouse-dev/gatehouse/services/internal/user/password"
	"github.com/gatehouse-dev/gatehouse/services/internal/user/store"
)

// recordingHasher is the real hasher, noting which hash each Verify got.
type recordingHasher struct {
	user.PasswordHasher
	mu     sync.Mutex
	hashes []string
}

func (r *recordingHasher) Verify(ctx context.Context, pw, hash string) (bool, error) {
	r.mu.Lock()
	r.hashes = append(r.hashes, hash)
	r.mu.Unlock()
	return r.PasswordHasher.Verify(ctx, pw, hash)
}

// fastHasher is the real hasher at the lowest cost the package accepts.
func fastHasher(t *testing.T) *password.Hasher {
	t.Helper()
	hasher, err := password.New(password.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return hasher
}

// newVerifyService is the User service on a fresh SQLite file with h.
func newVerifyService(t *testing.T, h user.PasswordHasher) *user.Service {
	t.Helper()
	db, err := database.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "u.db"), store.Migrations)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return user.NewService(store.New(db), h, user.Options{AllowSignup: true})
}

// TestVerifyPasswordSpendsAHashOnUnknownEmails: an unknown email goes
// through exactly one full argon2id check (against the dummy hash, which
// the password package proves costs as much as a real one), like a wrong
// password does, and both get the same status. So neither the answer nor
// the work done tells whether an account exists. Deterministic, unlike a
// stopwatch on a busy CI machine.
func TestVerifyPasswordSpendsAHashOnUnknownEmails(t *testing.T) {
	ctx := context.Background()
	h := &recordingHasher{PasswordHasher: fastHasher(t)}
	svc := newVerifyService(t, h)
	created, err := svc.CreateUser(ctx, &userv1.CreateUserRequest{Email: "known@example.com", Password: "right passphrase"})
	if err != nil {
		t.Fatal(err)
	}
	asService := authn.ContextWithClaims(ctx, &authn.Claims{Subject: "service:auth", Roles: []string{identity.RoleService}})

	tests := []struct {
		name, email, pw string
		code            codes.Code
		wantHash        func(string) bool
	}{
		{"right passphrase", "known@example.com", "right passphrase", codes.OK, func(h string) bool { return h != "" }},
		{"wrong password", "known@example.com", "wrong password", codes.Unauthenticated, func(h string) bool { return h != "" }},
		{"unknown email", "nobody@example.com", "wrong password", codes.Unauthenticated, func(h string) bool { return h == "" }},
	}
	var msgs []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.mu.Lock()
			h.hashes = nil
			h.mu.Unlock()
			resp, err := svc.VerifyPassword(asService, &userv1.VerifyPasswordRequest{Email: tt.email, Password: tt.pw})
			if status.Code(err) != tt.code {
				t.Fatalf("code = %v (%v), want %v", status.Code(err), err, tt.code)
			}
			if tt.code == codes.OK && resp.GetUser().GetId() != created.GetUser().GetId() {
				t.Errorf("verified user = %v", resp.GetUser())
			}
			if err != nil {
				msgs = append(msgs, status.Convert(err).Message())
			}
			if len(h.hashes) != 1 || !tt.wantHash(h.hashes[0]) {
				t.Errorf("hash checks = %q, want exactly one of the expected kind", h.hashes)
			}
		})
	}
	if len(msgs) != 2 || msgs[0] != msgs[1] {
		t.Errorf("failure messages differ: %q", msgs)
	}
}

// busyHasher is the real hasher whose queue is full: Admit refuses with
// the queue's drain time, as the password package's does under a flood.
type busyHasher struct {
	recordingHasher
	drain time.Duration
}

func (b *busyHasher) Admit() error { return &user.OverloadedError{RetryAfter: b.drain} }

// TestVerifyPasswordRefusesAFloodUpFront: while the hashing queue is full,
// VerifyPassword answers ResourceExhausted with the queue's drain time as
// its RetryInfo, before the attempt limits, the database read and the
// hash: a refusal costs what an RPC costs, and a wrong guess is not
// counted against the account for the server's own overload.
func TestVerifyPasswordRefusesAFloodUpFront(t *testing.T) {
	h := &busyHasher{recordingHasher: recordingHasher{PasswordHasher: fastHasher(t)}, drain: 1500 * time.Millisecond}
	svc := newVerifyService(t, h)
	asService := authn.ContextWithClaims(context.Background(), &authn.Claims{Subject: "service:auth", Roles: []string{identity.RoleService}})
	_, err := svc.VerifyPassword(asService, &userv1.VerifyPasswordRequest{Email: "known@example.com", Password: "right passphrase"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("code = %v (%v), want ResourceExhausted", status.Code(err), err)
	}
	if d, ok := rpcerr.RetryDelay(err); !ok || d != 2*time.Second {
		t.Errorf("RetryInfo = %v, %v; want the queue's 1.5s in whole seconds, 2s", d, ok)
	}
	if len(h.hashes) != 0 {
		t.Errorf("%d hashes checked while refusing", len(h.hashes))
	}
}
