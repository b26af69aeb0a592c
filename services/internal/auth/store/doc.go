// Package store keeps refresh-token families and their tokens in SQL:
// SQLite or PostgreSQL, through one set of queries. It implements
// auth.RefreshStore.
//
// # Rotation
//
// Rotate runs in one transaction whose first statement is a conditional
// write on the presented token:
//
//	UPDATE refresh_tokens SET rotated_at = now WHERE hash = old AND rotated_at IS NULL
//
// Exactly one of any number of concurrent calls changes the row:
//
//   - PostgreSQL (READ COMMITTED): the UPDATE takes the row lock. A
//     concurrent UPDATE of the same row waits for the holder to finish,
//     then re-evaluates its WHERE clause against the committed row, finds
//     rotated_at set and changes nothing. The statements that follow see
//     everything committed before they started, so a loser sees the
//     winner's rotated_at (or, if the winner rolled back, the loser's own
//     UPDATE has won instead).
//   - SQLite: the database layer begins every read-write transaction with
//     BEGIN IMMEDIATE, so the write lock is held from BEGIN to COMMIT and
//     rotations run one after the other. Even under DEFERRED the first
//     statement is a write, which takes the lock before anything is read.
//
// The winner then checks the family (revoked, absolute expiry) and the
// token's idle window. On any of those it rolls back: an expired or revoked
// token is not marked rotated, nothing is inserted, and every later
// presentation meets the same check again. Otherwise it inserts the next
// token and commits.
//
// A loser (zero rows changed) reads the token: unknown gives
// ErrTokenNotFound; a revoked family ErrTokenRevoked; an expired family
// ErrTokenExpired; a rotation less than grace ago ErrTokenJustRotated with
// nothing changed; anything else is reuse: the family is revoked, that
// revocation is committed, and only then ErrTokenReused is returned. A
// partial unique index (one unrotated token per family) backs all this up
// on both databases.
package store
