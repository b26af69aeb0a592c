// Package password hashes and verifies passwords with argon2id. It
// implements user.PasswordHasher.
//
// Every hash and every verification holds one of a fixed number of slots
// while it runs, so memory stays near Params.Memory times the slot count
// however many requests arrive: a caller waits for a slot as long as its
// context allows and otherwise fails with its context's error. With a
// WithMaxWait bound, a caller the queue ahead of it would keep past the
// bound is refused at once with a *user.OverloadedError naming the queue's
// drain time, and one let in that still finds no slot in time gets it at
// the bound.
package password
