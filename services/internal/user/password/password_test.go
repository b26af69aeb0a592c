package password_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"go.uber.org/goleak"

	"github.com/gatehouse-dev/gatehouse/services/internal/user"
	"github.com/gatehouse-dev/gatehouse/services/internal/user/password"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fast keeps tests quick; the defaults get a test of their own.
var fast = password.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

func newHasher(t testing.TB, p password.Params, maxConcurrent int) *password.Hasher {
	t.Helper()
	h, err := password.New(p, maxConcurrent)
	if err != nil {
		t.Fatalf("New(%+v, %d): %v", p, maxConcurrent, err)
	}
	return h
}

func mustHash(t testing.TB, h *password.Hasher, pw string) string {
	t.Helper()
	hash, err := h.Hash(context.Background(), pw)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return hash
}

func verify(t *testing.T, h *password.Hasher, pw, hash string) bool {
	t.Helper()
	ok, err := h.Verify(context.Background(), pw, hash)
	if err != nil {
		t.Fatalf("Verify(%q, %q): %v", pw, hash, err)
	}
	return ok
}

func TestHashVerifyRoundTrip(t *testing.T) {
	h := newHasher(t, fast, 2)
	tests := []struct {
		name, password, wrong string
	}{
		{"ascii", "correct horse battery staple", "correct horse battery stapl"},
		{"empty", "", " "},
		{"unicode", "pässwörd-日本語-\U0001F511", "passwörd-日本語-\U0001F511"},
		{"nul byte", "abc\x00def", "abc"},
		{"long", strings.Repeat("long password ", 100), strings.Repeat("long password ", 99)},
		{"case", "Secret", "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash := mustHash(t, h, tt.password)
			if !strings.HasPrefix(hash, "$argon2id$v=19$m=64,t=1,p=1$") {
				t.Errorf("hash %q does not carry the configured parameters", hash)
			}
			if !verify(t, h, tt.password, hash) {
				t.Error("the right password does not verify")
			}
			if verify(t, h, tt.wrong, hash) {
				t.Errorf("the wrong password %q verifies", tt.wrong)
			}
			if again := mustHash(t, h, tt.password); again == hash {
				t.Error("two hashes of one password are equal; the salt is not random")
			}
		})
	}
}

func TestDefaultParams(t *testing.T) {
	want := password.Params{Memory: 19456, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	if got := password.DefaultParams(); got != want {
		t.Fatalf("DefaultParams() = %+v, want %+v", got, want)
	}
	// The zero Params select the defaults; this is the one slow test.
	h := newHasher(t, password.Params{}, 0)
	if got := h.Params(); got != want {
		t.Fatalf("Params() = %+v, want %+v", got, want)
	}
	hash := mustHash(t, h, "hunter2")
	p, salt, key, err := argon2id.DecodeHash(hash)
	if err != nil {
		t.Fatalf("DecodeHash(%q): %v", hash, err)
	}
	if p.Memory != 19456 || p.Iterations != 2 || p.Parallelism != 1 || len(salt) != 16 || len(key) != 32 {
		t.Errorf("hash made with m=%d t=%d p=%d, %d-byte salt, %d-byte key",
			p.Memory, p.Iterations, p.Parallelism, len(salt), len(key))
	}
	if !verify(t, h, "hunter2", hash) || verify(t, h, "hunter3", hash) {
		t.Error("default-parameter hash does not verify correctly")
	}
}

func TestNewRejectsUnsafeParams(t *testing.T) {
	tests := []struct {
		name string
		edit func(*password.Params)
	}{
		{"zero iterations", func(p *password.Params) { p.Iterations = 0 }},
		{"zero parallelism", func(p *password.Params) { p.Parallelism = 0 }},
		{"memory below 8 KiB per lane", func(p *password.Params) { p.Memory, p.Parallelism = 15, 2 }},
		{"short salt", func(p *password.Params) { p.SaltLength = 4 }},
		{"short key", func(p *password.Params) { p.KeyLength = 8 }},
		{"huge key", func(p *password.Params) { p.KeyLength = 1 << 20 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fast
			tt.edit(&p)
			if _, err := password.New(p, 1); err == nil {
				t.Errorf("New(%+v) succeeded", p)
			}
		})
	}
}

func TestVerifyUnknownUser(t *testing.T) {
	h := newHasher(t, fast, 1)
	for _, pw := range []string{"", "anything", "gatehouse: no such user"} {
		if verify(t, h, pw, "") {
			t.Errorf("Verify(%q, \"\") = true", pw)
		}
	}
}

// TestVerifyUnknownUserTakesAsLong guards against an early return for
// unknown users, which would let a caller tell them apart by timing.
func TestVerifyUnknownUserTakesAsLong(t *testing.T) {
	p := fast
	p.Memory = 4 * 1024 // long enough to dwarf the bookkeeping around it
	h := newHasher(t, p, 1)
	hash := mustHash(t, h, "real password")
	median := func(pw, hash string) time.Duration {
		var d []time.Duration
		for range 7 {
			start := time.Now()
			if _, err := h.Verify(context.Background(), pw, hash); err != nil {
				t.Fatal(err)
			}
			d = append(d, time.Since(start))
		}
		slices.Sort(d)
		return d[len(d)/2]
	}
	known, unknown := median("wrong password", hash), median("wrong password", "")
	if unknown < known/4 {
		t.Errorf("unknown user verified in %v, a known one in %v", unknown, known)
	}
}

func TestVerifyMalformedHashes(t *testing.T) {
	h := newHasher(t, fast, 1)
	valid := mustHash(t, h, "pw")
	fields := strings.Split(valid, "$") // "", argon2id, v=19, m=64,t=1,p=1, salt, key
	salt, key := fields[4], fields[5]
	with := func(params, salt, key string) string {
		return "$argon2id$v=19$" + params + "$" + salt + "$" + key
	}
	tests := []struct {
		name, hash string
	}{
		{"garbage", "not a hash"},
		{"only separators", "$$$$$"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"version 16", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"version with junk", "$argon2id$v=19x$m=64,t=1,p=1$" + salt + "$" + key},
		{"missing leading $", "argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"extra field", valid + "$extra"},
		{"params not numbers", with("m=abc,t=1,p=1", salt, key)},
		{"params with junk", with("m=64,t=1,p=1,x=2", salt, key)},
		{"params reordered", with("t=1,m=64,p=1", salt, key)},
		{"zero iterations", with("m=64,t=0,p=1", salt, key)},
		{"zero lanes", with("m=64,t=1,p=0", salt, key)},
		{"lanes overflow", with("m=64,t=1,p=256", salt, key)},
		{"negative memory", with("m=-1,t=1,p=1", salt, key)},
		{"memory below minimum", with("m=7,t=1,p=1", salt, key)},
		{"memory over limit", with("m=4194304,t=1,p=1", salt, key)},
		{"iterations over limit", with("m=64,t=4294967295,p=1", salt, key)},
		{"lanes over limit", with("m=2048,t=1,p=255", salt, key)},
		{"empty key", with("m=64,t=1,p=1", salt, "")},
		{"empty salt", with("m=64,t=1,p=1", "", key)},
		{"salt not base64", with("m=64,t=1,p=1", "!!!!", key)},
		{"key not base64", with("m=64,t=1,p=1", salt, key[:20]+"*"+key[21:])},
		{"padded key", with("m=64,t=1,p=1", salt, key+"=")},
		{"other key length", with("m=64,t=1,p=1", salt, key[:22])},
	}
	// Every cut of a valid hash, as a too-short column would leave it.
	for i := 1; i < len(valid); i++ {
		tests = append(tests, struct{ name, hash string }{fmt.Sprintf("truncated to %d", i), valid[:i]})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := h.Verify(context.Background(), "pw", tt.hash)
			if !errors.Is(err, password.ErrInvalidHash) {
				t.Errorf("Verify(%q) error = %v, want ErrInvalidHash", tt.hash, err)
			}
			if ok {
				t.Errorf("Verify(%q) = true", tt.hash)
			}
		})
	}
}

// TestOlderCostsStillVerify covers lowering the parameters: hashes made
// with up to 4 times the configured costs keep working.
func TestOlderCostsStillVerify(t *testing.T) {
	old := fast
	old.Memory, old.Iterations, old.Parallelism = 4*fast.Memory, 4*fast.Iterations, 4*fast.Parallelism
	hash := mustHash(t, newHasher(t, old, 1), "pw")
	h := newHasher(t, fast, 1)
	if !verify(t, h, "pw", hash) {
		t.Error("hash with 4x the costs does not verify")
	}
}

// TestCallersGoneGetNoSlot: a caller whose context has ended is refused
// with the context's error and never hashes, whether a slot is free or it
// was waiting for one; so an attacker's abandoned requests cost nothing. A
// caller whose context allows it waits for a slot instead.
func TestCallersGoneGetNoSlot(t *testing.T) {
	// Slow enough that the first Hash still runs during the checks.
	slow := fast
	slow.Memory, slow.Iterations = 32*1024, 4
	h := newHasher(t, slow, 1)
	hash := mustHash(t, h, "pw")

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	before, _ := h.Computations()
	if _, err := h.Hash(cancelled, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with a free slot and a cancelled caller = %v, want context.Canceled", err)
	}
	if after, _ := h.Computations(); after != before {
		t.Fatalf("a cancelled caller hashed (%d computations, was %d)", after, before)
	}

	firstDone := make(chan error, 1)
	go func() {
		_, err := h.Hash(context.Background(), "first")
		firstDone <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for _, inUse := h.Slots(); inUse == 0; _, inUse = h.Slots() {
		if time.Now().After(deadline) {
			t.Fatal("the first Hash never held the slot")
		}
		time.Sleep(time.Millisecond)
	}

	short, cancelShort := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancelShort()
	tests := []struct {
		name string
		ctx  context.Context
		call func(ctx context.Context) error
	}{
		{"Hash, cancelled", cancelled, func(ctx context.Context) error { _, err := h.Hash(ctx, "x"); return err }},
		{"Hash, short deadline", short, func(ctx context.Context) error { _, err := h.Hash(ctx, "x"); return err }},
		{"Verify", cancelled, func(ctx context.Context) error { _, err := h.Verify(ctx, "pw", hash); return err }},
		{"Verify unknown user", cancelled, func(ctx context.Context) error { _, err := h.Verify(ctx, "pw", ""); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(tt.ctx)
			if !errors.Is(err, tt.ctx.Err()) || errors.Is(err, user.ErrOverloaded) {
				t.Errorf("error = %v, want the context's %v", err, tt.ctx.Err())
			}
		})
	}
	select {
	case <-firstDone:
		t.Fatal("the first Hash finished before the checks; they proved nothing")
	default:
	}

	// A caller whose context allows it waits for the slot instead.
	patient, cancelPatient := context.WithTimeout(context.Background(), time.Minute)
	defer cancelPatient()
	if _, err := h.Hash(patient, "patient"); err != nil {
		t.Errorf("Hash with time to wait: %v", err)
	}
	if err := <-firstDone; err != nil {
		t.Errorf("first Hash: %v", err)
	}
	if hashes, verifies := h.Computations(); hashes != 3 || verifies != 0 {
		t.Errorf("computations = %d hashes, %d verifies; want 3 and 0 (mustHash, first, patient)", hashes, verifies)
	}
}

func BenchmarkHash(b *testing.B) {
	h := newHasher(b, password.DefaultParams(), 0)
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzVerify treats the stored hash as untrusted bytes: whatever it holds,
// Verify must neither panic nor report a match together with an error.
func FuzzVerify(f *testing.F) {
	h := newHasher(f, fast, 1)
	valid := mustHash(f, h, "pw")
	for _, seed := range []string{
		valid, "", "$", "$$$$$", "not a hash",
		"$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
		"$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$",
		"$argon2id$v=19$m=4294967295,t=4294967295,p=255$c2FsdA$a2V5",
		valid[:len(valid)/2],
	} {
		f.Add("pw", seed)
	}
	f.Fuzz(func(t *testing.T, pw, hash string) {
		ok, err := h.Verify(context.Background(), pw, hash)
		if ok && err != nil {
			t.Errorf("Verify(%q, %q) = true, %v", pw, hash, err)
		}
		if ok && hash == "" {
			t.Errorf("Verify(%q, \"\") = true", pw)
		}
		if err != nil && !errors.Is(err, password.ErrInvalidHash) {
			t.Errorf("Verify(%q, %q) error %v does not wrap ErrInvalidHash", pw, hash, err)
		}
	})
}

// TestBudgetHasItsOwnSlots: a second budget hashes and verifies like the
// first (same parameters, same stand-in for unknown users), but holds and
// counts its own slots.
func TestBudgetHasItsOwnSlots(t *testing.T) {
	h := newHasher(t, fast, 2)
	b := h.Budget(1)
	hash := mustHash(t, b, "pw")
	if !verify(t, h, "pw", hash) || verify(t, b, "other", hash) {
		t.Fatal("a hash of one budget does not verify in the other")
	}
	if ok, err := b.Verify(context.Background(), "pw", ""); ok || err != nil {
		t.Fatalf("unknown user in the second budget = %v, %v", ok, err)
	}
	if c, _ := b.Slots(); c != 1 {
		t.Errorf("second budget capacity = %d, want 1", c)
	}
	if c, _ := h.Slots(); c != 2 {
		t.Errorf("first budget capacity = %d, want 2", c)
	}
	if hashes, verifies := b.Computations(); hashes != 1 || verifies != 2 {
		t.Errorf("second budget counted %d hashes, %d verifies; want 1 and 2", hashes, verifies)
	}
}

// TestFloodIsRefusedBeforeItQueues: with a wait bound, a caller that the
// queue ahead of it would keep past the bound is refused at once, with the
// queue's drain time as its retry delay, while the callers the slots can
// serve in time keep waiting and are served. Before, every caller queued
// and the refused ones learned it only when the bound ran out.
func TestFloodIsRefusedBeforeItQueues(t *testing.T) {
	// Two slots, 2 s per computation (set, not measured: the figures are
	// the estimate's input), 10 s of patience, of which a caller is let
	// in with an expected wait of 7.5 s at most: the first six callers in
	// line wait at most 6 s, the seventh would wait 8 s.
	h, err := password.New(fast, 2, password.WithMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	hash := mustHash(t, h, "pw")
	release := password.HoldSlots(h, 2)
	password.SetComputationTime(h, 2*time.Second)
	if err := h.Admit(); err != nil {
		t.Fatalf("Admit() with an empty queue = %v", err)
	}
	// A caller whose deadline comes before its turn (2 s) is refused and
	// not counted: callers that will give up cannot fill the line.
	short, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var over *user.OverloadedError
	if _, err := h.Verify(short, "pw", hash); !errors.As(err, &over) || password.Waiting(h) != 0 {
		t.Fatalf("a caller with 1s left, 2s from a slot: %v, %d queued; want refused, none queued", err, password.Waiting(h))
	}

	served := make(chan error, 6)
	for range 6 {
		go func() {
			_, err := h.Verify(context.Background(), "pw", hash)
			served <- err
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for password.Waiting(h) != 6 {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("%d callers queued, want 6", password.Waiting(h))
		}
		time.Sleep(time.Millisecond)
	}

	tests := []struct {
		name string
		call func() error
	}{
		{"Verify", func() error { _, err := h.Verify(context.Background(), "pw", hash); return err }},
		{"Verify unknown user", func() error { _, err := h.Verify(context.Background(), "pw", ""); return err }},
		{"Hash", func() error { _, err := h.Hash(context.Background(), "pw"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call() // the slots are held: only a refusal returns
			var over *user.OverloadedError
			if !errors.As(err, &over) || !errors.Is(err, user.ErrOverloaded) {
				t.Fatalf("error = %v, want a *user.OverloadedError", err)
			}
			if over.RetryAfter < 8*time.Second || over.RetryAfter > 12*time.Second {
				t.Errorf("RetryAfter = %s, want 8s (7th in line on 2 slots at 2s each) plus up to half of it in jitter", over.RetryAfter)
			}
		})
	}
	if err := h.Admit(); !errors.As(err, &over) || over.RetryAfter < 8*time.Second || over.RetryAfter > 12*time.Second {
		t.Errorf("Admit() = %v, want the same refusal without queueing", err)
	}
	if n := password.Waiting(h); n != 6 {
		t.Errorf("%d callers queued after the refusals, want the 6 still waiting", n)
	}
	release()
	for range 6 {
		if err := <-served; err != nil {
			t.Errorf("a caller the slots could serve in time: %v", err)
		}
	}
	if n := password.Waiting(h); n != 0 {
		t.Errorf("%d callers still counted as queued", n)
	}
}

// TestWaitBoundStillHolds: a caller let in on the estimate that still
// finds no slot within the bound is refused then, with the bound as its
// retry delay.
func TestWaitBoundStillHolds(t *testing.T) {
	h, err := password.New(fast, 1, password.WithMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	release := password.HoldSlots(h, 1)
	defer release()
	password.SetComputationTime(h, time.Microsecond) // the estimate lets it in
	_, err = h.Hash(context.Background(), "pw")
	var over *user.OverloadedError
	if !errors.As(err, &over) || over.RetryAfter < 50*time.Millisecond || over.RetryAfter > 75*time.Millisecond {
		t.Fatalf("error = %v, want a *user.OverloadedError with the 50ms bound (plus jitter) as its delay", err)
	}
}
