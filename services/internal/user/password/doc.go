// Package password hashes and verifies passwords with argon2id. It
// implements user.PasswordHasher.
//
// Every hash and every verification holds one of a fixed number of slots
// while it runs, so memory stays near Params.Memory times the slot count
// however many requests arrive: a caller waits for a slot as long as its
// context allows (at most the WithMaxWait bound, then user.ErrOverloaded)
// and otherwise fails with its context's error.
package password
