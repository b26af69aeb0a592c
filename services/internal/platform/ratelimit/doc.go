// Package ratelimit counts attempts in token buckets (logins, password
// changes, sign-ups) keyed by whatever the caller names: an account, a
// client address, or both.
//
// Two rules shape it, because a limit is something an attacker can aim:
//
//   - A full limiter never refuses a key for being new. The in-memory
//     store is a fixed-size LRU: a flood of distinct keys evicts the
//     stalest buckets, in O(1), instead of locking every newcomer out (the
//     worst an eviction does is forget a bucket, giving its key a fresh
//     burst).
//   - Buckets can be shared by replicas: NewSQL keeps them in a PostgreSQL
//     table, updated in one atomic statement per attempt, so two replicas
//     behind one Service hold one limit, not two.
//
// Callers choose what an attempt costs: Take before the work, and Refund
// when it went well, so only failures are counted (a user who logs in
// successfully all day is never limited), while a burst of concurrent
// guesses cannot all slip in before the first failure is recorded.
package ratelimit
