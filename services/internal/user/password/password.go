package password

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alexedwards/argon2id"
	"golang.org/x/crypto/argon2"

	"github.com/gatehouse-dev/gatehouse/services/internal/user"
)

// Params are the argon2id cost parameters.
type Params struct {
	Memory      uint32 // KiB
	Iterations  uint32
	Parallelism uint8
	SaltLength  uint32 // bytes
	KeyLength   uint32 // bytes
}

// DefaultParams returns the OWASP recommendation for argon2id: 19 MiB of
// memory, 2 iterations, 1 lane, a 16-byte salt and a 32-byte key.
func DefaultParams() Params {
	return Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
}

// Limits on the shape of a hash, configured or stored.
const (
	minSaltLength = 8  // the argon2 minimum
	maxSaltLength = 64 // far above any real salt
	minKeyLength  = 16 // shorter keys collide too easily
	maxKeyLength  = 64
	// costFactor bounds each cost of a stored hash at this multiple of the
	// configured one. Hashes made before the parameters were lowered still
	// verify, while a corrupted or planted hash cannot demand gigabytes or
	// hours.
	costFactor = 4
)

// ErrInvalidHash reports a stored hash that is not an argon2id hash this
// package accepts.
var ErrInvalidHash = errors.New("password: invalid stored hash")

// Hasher hashes and verifies passwords. It is safe for concurrent use.
type Hasher struct {
	params  Params
	slots   chan struct{}
	maxWait time.Duration // longest wait for a slot; 0: as long as the caller's context
	dummy   string        // a hash with params, for users that do not exist

	hashes, verifies atomic.Uint64 // argon2id computations run, by kind
	// waiting counts callers queued for a slot, and took the moving
	// average of one computation's time in nanoseconds: together they
	// say how long a newcomer would wait, so one that would wait past
	// maxWait is refused at once instead of after maxWait.
	waiting, took atomic.Int64
}

var _ user.PasswordHasher = (*Hasher)(nil)

// Option configures New.
type Option func(*Hasher)

// WithMaxWait bounds how long a caller waits for a free slot. A caller that
// would wait more than three quarters of it, judged from the callers
// queued ahead of it and the time a computation takes, or longer than its
// own deadline allows, gets a *user.OverloadedError at once (a fast
// ResourceExhausted whose retry delay is the time the queue needs to
// drain, plus jitter) instead of queueing until its own deadline behind
// work it cannot see the end of; one that was let in but still finds no
// slot within d gets the same error then. 0 waits as long as the caller's
// context allows.
func WithMaxWait(d time.Duration) Option { return func(h *Hasher) { h.maxWait = max(d, 0) } }

// New returns a Hasher using params, the zero Params meaning
// DefaultParams(), that runs at most maxConcurrent argon2id computations at
// a time; maxConcurrent <= 0 means runtime.GOMAXPROCS(0). It computes one
// hash up front, the stand-in for unknown users.
func New(params Params, maxConcurrent int, opts ...Option) (*Hasher, error) {
	if params == (Params{}) {
		params = DefaultParams()
	}
	if err := params.validate(); err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	h := &Hasher{params: params, slots: newSlots(maxConcurrent)}
	for _, o := range opts {
		o(h)
	}
	start := time.Now()
	dummy, err := argon2id.CreateHash("gatehouse: no such user", h.argon2idParams())
	if err != nil {
		return nil, fmt.Errorf("password: dummy hash: %w", err)
	}
	h.dummy = dummy
	h.took.Store(int64(time.Since(start)))
	return h, nil
}

// Budget returns a Hasher with the same parameters, wait bound and stand-in
// hash, but slots (and counts) of its own: at most maxConcurrent
// computations, maxConcurrent <= 0 meaning runtime.GOMAXPROCS(0). A second
// budget costs no second stand-in hash at start.
func (h *Hasher) Budget(maxConcurrent int) *Hasher {
	b := &Hasher{params: h.params, slots: newSlots(maxConcurrent), maxWait: h.maxWait, dummy: h.dummy}
	b.took.Store(h.took.Load())
	return b
}

// newSlots makes room for maxConcurrent computations at once, one per CPU
// when maxConcurrent <= 0.
func newSlots(maxConcurrent int) chan struct{} {
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.GOMAXPROCS(0)
	}
	return make(chan struct{}, maxConcurrent)
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.params }

// Computations reports how many argon2id computations this Hasher has run,
// for new hashes and for verifications: what a request really cost, for
// metrics and for tests that bound it.
func (h *Hasher) Computations() (hashes, verifies uint64) {
	return h.hashes.Load(), h.verifies.Load()
}

// Slots reports how many computations may run at once and how many run now.
func (h *Hasher) Slots() (capacity, inUse int) { return cap(h.slots), len(h.slots) }

// Hash returns the argon2id hash of password in PHC string format, with a
// fresh random salt.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	release, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	h.hashes.Add(1)
	defer h.timed(time.Now())
	hash, err := argon2id.CreateHash(password, h.argon2idParams())
	if err != nil {
		return "", fmt.Errorf("password: hash: %w", err)
	}
	return hash, nil
}

// Verify reports whether password matches hash, comparing in constant
// time. An empty hash, for a user that does not exist, is checked against a
// dummy hash with the same parameters so that it takes as long as a real
// check, and never matches. A hash that cannot be parsed, has other salt or
// key lengths than Params, or costs more than 4 times Params in memory,
// iterations or lanes gives an error wrapping ErrInvalidHash: lowering the
// costs keeps old hashes working, changing the lengths does not.
func (h *Hasher) Verify(ctx context.Context, password, hash string) (bool, error) {
	unknownUser := hash == ""
	if !unknownUser {
		if err := h.checkStored(hash); err != nil {
			return false, err
		}
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	if unknownUser {
		hash = h.dummy
	}
	h.verifies.Add(1)
	defer h.timed(time.Now())
	// The library compares the derived keys with crypto/subtle.
	match, err := argon2id.ComparePasswordAndHash(password, hash)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrInvalidHash, err)
	}
	return match && !unknownUser, nil
}

// acquire waits for a free slot until ctx ends. A caller that is gone
// (cancelled, or past its deadline) gets no slot, even a free one: the
// 19 MiB and the CPU are for callers still waiting for the answer, and an
// attacker's abandoned requests must not keep hashing. Its error is the
// context's, so the call ends as Canceled or DeadlineExceeded (the
// caller's own doing), not as the server's overload.
//
// With a wait bound, a caller that would queue longer than it (or than its
// own deadline) is refused before it queues: under a flood the queue stays
// as long as the slots can drain within maxWait, the callers in it are
// answered within maxWait, and the rest learn in microseconds when to
// come back.
func (h *Hasher) acquire(ctx context.Context) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("password: caller gone before hashing: %w", err)
	}
	release = func() { <-h.slots }
	select {
	case h.slots <- struct{}{}:
		return release, nil
	default:
	}
	var tooLong <-chan time.Time
	if h.maxWait > 0 {
		wait, refused := h.newcomerWait()
		if refused != nil {
			return nil, refused
		}
		// A caller whose deadline comes first would leave before its
		// turn: it is refused now rather than counted, so callers that
		// give up early cannot fill the line and turn everyone away.
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return nil, fmt.Errorf("password: the caller's deadline comes before a hashing slot (about %s): %w",
				wait.Round(time.Millisecond), overloaded(wait))
		}
		h.waiting.Add(1)
		defer h.waiting.Add(-1)
		t := time.NewTimer(h.maxWait)
		defer t.Stop()
		tooLong = t.C
	}
	select {
	case h.slots <- struct{}{}:
		if err := ctx.Err(); err != nil {
			release()
			return nil, fmt.Errorf("password: caller gone while waiting for a hashing slot: %w", ctx.Err())
		}
		return release, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("password: caller gone while waiting for a hashing slot: %w", ctx.Err())
	case <-tooLong:
		return nil, fmt.Errorf("password: no hashing slot free within %s: %w", h.maxWait, overloaded(h.maxWait))
	}
}

// Admit implements user.PasswordHasher.Admit: nil while a slot is free or
// a newcomer's expected wait is within the bound.
func (h *Hasher) Admit() error {
	if h.maxWait <= 0 || len(h.slots) < cap(h.slots) {
		return nil
	}
	_, err := h.newcomerWait()
	return err
}

// newcomerWait is the wait a caller joining the line now can expect, with
// the refusal it gets when that is past admitWithin.
func (h *Hasher) newcomerWait() (time.Duration, error) {
	queued := h.waiting.Load()
	wait := h.expectedWait(queued + 1)
	if wait > h.admitWithin() {
		return wait, fmt.Errorf("password: %d callers queued for %d hashing slots, about %s of work: %w",
			queued, cap(h.slots), wait.Round(time.Millisecond), overloaded(wait))
	}
	return wait, nil
}

// admitWithin is the longest expected wait a caller is let in with: three
// quarters of the bound, because the estimate trails a rise in load (a
// moving average) and leaves out the hand-over between computations, and
// a caller let in at the bound itself mostly waited it out and was
// refused after all.
func (h *Hasher) admitWithin() time.Duration { return h.maxWait - h.maxWait/4 }

// overloaded is the refusal for a queue that drains in about wait, with up
// to half as much again at random: callers told the same delay would come
// back together and meet the same full queue.
func overloaded(wait time.Duration) *user.OverloadedError {
	return &user.OverloadedError{RetryAfter: wait + rand.N(wait/2+1)} //nolint:gosec // jitter, not a secret
}

// expectedWait is how long the queued-th caller in line waits for a slot:
// every slot runs one computation at a time, so the line moves a slot's
// worth of callers per computation.
func (h *Hasher) expectedWait(queued int64) time.Duration {
	slots := int64(cap(h.slots))
	return time.Duration((queued+slots-1)/slots) * time.Duration(h.took.Load())
}

// timed folds one computation that started at start into the moving
// average (weight 1/8: a few computations follow a change of load or of
// machine, one slow one does not swing it). Concurrent updates may lose
// one another's sample, which an estimate can afford.
func (h *Hasher) timed(start time.Time) {
	d := int64(time.Since(start))
	old := h.took.Load()
	h.took.Store(old + (d-old)/8)
}

// checkStored parses hash and checks it against the limits, before any
// expensive work: x/crypto/argon2 panics on zero iterations or lanes, the
// library would take an empty key as a match for every password, and a
// planted cost could exhaust memory.
func (h *Hasher) checkStored(hash string) error {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" {
		return fmt.Errorf("%w: not a PHC string with 5 fields", ErrInvalidHash)
	}
	p, salt, key, err := argon2id.DecodeHash(hash)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidHash, err)
	}
	// The library's Sscanf parsing ignores trailing text; the canonical
	// form rules out junk and cut-off fields it would let through.
	if parts[2] != fmt.Sprintf("v=%d", argon2.Version) ||
		parts[3] != fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Iterations, p.Parallelism) {
		return fmt.Errorf("%w: version or parameters not in canonical form", ErrInvalidHash)
	}
	stored := Params{Memory: p.Memory, Iterations: p.Iterations, Parallelism: p.Parallelism}
	if err := stored.validateCost(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidHash, err)
	}
	// Lengths other than the configured ones mean a truncated or altered
	// hash; unlike costs they have no reason to change over time.
	if len(salt) != int(h.params.SaltLength) || len(key) != int(h.params.KeyLength) {
		return fmt.Errorf("%w: %d-byte salt and %d-byte key, want %d and %d",
			ErrInvalidHash, len(salt), len(key), h.params.SaltLength, h.params.KeyLength)
	}
	limit := h.params
	switch {
	case uint64(stored.Memory) > costFactor*uint64(limit.Memory):
		return fmt.Errorf("%w: memory %d KiB exceeds %d times the configured %d KiB", ErrInvalidHash, stored.Memory, costFactor, limit.Memory)
	case uint64(stored.Iterations) > costFactor*uint64(limit.Iterations):
		return fmt.Errorf("%w: %d iterations exceed %d times the configured %d", ErrInvalidHash, stored.Iterations, costFactor, limit.Iterations)
	case uint64(stored.Parallelism) > costFactor*uint64(limit.Parallelism):
		return fmt.Errorf("%w: %d lanes exceed %d times the configured %d", ErrInvalidHash, stored.Parallelism, costFactor, limit.Parallelism)
	}
	return nil
}

func (p Params) validate() error {
	if err := p.validateCost(); err != nil {
		return err
	}
	switch {
	case p.SaltLength < minSaltLength || p.SaltLength > maxSaltLength:
		return fmt.Errorf("salt length %d is outside [%d, %d]", p.SaltLength, minSaltLength, maxSaltLength)
	case p.KeyLength < minKeyLength || p.KeyLength > maxKeyLength:
		return fmt.Errorf("key length %d is outside [%d, %d]", p.KeyLength, minKeyLength, maxKeyLength)
	}
	return nil
}

func (p Params) validateCost() error {
	switch {
	case p.Iterations < 1:
		return errors.New("iterations must be at least 1")
	case p.Parallelism < 1:
		return errors.New("parallelism must be at least 1")
	case p.Memory < 8*uint32(p.Parallelism):
		return fmt.Errorf("memory %d KiB is below the argon2 minimum of 8 KiB per lane", p.Memory)
	}
	return nil
}

func (h *Hasher) argon2idParams() *argon2id.Params {
	return &argon2id.Params{
		Memory:      h.params.Memory,
		Iterations:  h.params.Iterations,
		Parallelism: h.params.Parallelism,
		SaltLength:  h.params.SaltLength,
		KeyLength:   h.params.KeyLength,
	}
}
