package ratelimit

import (
	"context"
	"fmt"
	"time"
)

// Attempts limits credential checks (a login, a password change) so that
// guessing is slow and nobody can use the limit to keep an account's owner
// out. Each attempt counts against three buckets:
//
//   - PerPair, keyed on (account, client address): the strict limit, on
//     failures only (a success gives its token back). Failures from other
//     addresses never touch it.
//   - PerAddress, keyed on the client address alone, on every attempt:
//     one address trying many accounts (password spraying), or making the
//     service hash for it again and again, even with a right password.
//   - PerAccount, keyed on the account alone, on failures only: a looser
//     backstop against guesses spread over many addresses. An address that
//     succeeded for the account within Trust is exempt, so a flood from
//     elsewhere cannot lock the owner out of the places it usually logs in
//     from.
//
// A rule that is Off is skipped.
type Attempts struct {
	Store      Store
	PerPair    Rule
	PerAddress Rule
	PerAccount Rule
	// Trust is how long a success exempts its (account, address) from
	// PerAccount; 0 exempts nothing.
	Trust time.Duration
	// Scope prefixes every key, so the limits of two purposes sharing a
	// Store ("login", "password-change") stay apart.
	Scope string
	Now   func() time.Time
}

// LimitedError refuses an attempt: which limit, and when to retry.
type LimitedError struct {
	Limit      string // "account and address", "address" or "account"
	RetryAfter time.Duration
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("too many failed attempts per %s; retry in %s", e.Limit, e.RetryAfter.Round(time.Second))
}

// Attempt is one credential check in progress; report how it went with
// Succeeded or Failed.
type Attempt struct {
	a     *Attempts
	taken []taken
	trust string // the (account, address) key to mark on success
}

type taken struct {
	key        string
	rule       Rule
	refundable bool // given back when the attempt succeeds
}

func (a *Attempts) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Begin counts an attempt on account from addr before its credentials are
// checked, so concurrent guesses cannot all slip in before the first
// failure is recorded. It returns a *LimitedError when a limit is
// reached (and then counts nothing), or the store's error.
func (a *Attempts) Begin(ctx context.Context, account, addr string) (*Attempt, error) {
	now := a.now()
	at := &Attempt{a: a, trust: Key(a.Scope, "trusted", account, addr)}
	type check struct {
		limit      string
		key        string
		rule       Rule
		refundable bool
	}
	checks := []check{
		{"account and address", Key(a.Scope, "pair", account, addr), a.PerPair, true},
		{"address", Key(a.Scope, "address", addr), a.PerAddress, false},
	}
	if !a.PerAccount.Off() {
		trusted := false
		if a.Trust > 0 {
			var err error
			if trusted, err = a.Store.Marked(ctx, at.trust, now); err != nil {
				return nil, err
			}
		}
		if !trusted {
			checks = append(checks, check{"account", Key(a.Scope, "account", account), a.PerAccount, true})
		}
	}
	for _, c := range checks {
		if c.rule.Off() {
			continue
		}
		ok, retry, err := a.Store.Take(ctx, c.key, c.rule, now)
		if err != nil {
			at.giveBack(ctx, true)
			return nil, err
		}
		if !ok {
			// Refused, so not an attempt at all: nothing it took stays.
			at.giveBack(ctx, true)
			return nil, &LimitedError{Limit: c.limit, RetryAfter: retry}
		}
		at.taken = append(at.taken, taken{c.key, c.rule, c.refundable})
	}
	return at, nil
}

// Succeeded gives back what the attempt took from the failure-only
// buckets, and trusts its address for the account for Attempts.Trust.
func (at *Attempt) Succeeded(ctx context.Context) error {
	at.giveBack(ctx, false)
	if at.a.Trust > 0 && !at.a.PerAccount.Off() {
		return at.a.Store.Mark(ctx, at.trust, at.a.now().Add(at.a.Trust))
	}
	return nil
}

// Failed keeps the attempt counted. It exists so that every path through
// a credential check says how it ended. A caller that left before the
// answer counts as a failure too: the work was done, and refunding it
// would let a client that cancels every call just before the answer
// guess for free.
func (at *Attempt) Failed() {}

// Abandon gives back what the attempt took from the failure-only buckets
// without trusting anything: the credentials were never judged, because a
// dependency failed before the check.
func (at *Attempt) Abandon(ctx context.Context) { at.giveBack(ctx, false) }

// giveBack refunds the refundable buckets taken, or all of them.
func (at *Attempt) giveBack(ctx context.Context, all bool) {
	// The refund is owed whatever happened to the caller's context (on
	// PostgreSQL a cancelled one would make it fail).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	now := at.a.now()
	for _, t := range at.taken {
		if all || t.refundable {
			// A refund lost to a database hiccup costs the user one
			// attempt of its budget, never a wrong answer: ignore it.
			_ = at.a.Store.Refund(ctx, t.key, t.rule, now)
		}
	}
	at.taken = nil
}
