package authn

import (
	"context"
	"fmt"
)

// KeySet finds the key a token names by its kid.
//
// Implementations must be safe for concurrent use, must not do unbounded I/O
// in Lookup (a token's kid is attacker-chosen), and must return errors that
// wrap ErrUnknownKey (no such key) or ErrKeysUnavailable (nothing loaded yet).
type KeySet interface {
	// Lookup returns the key for kid. The Verifier has already checked kid
	// with ValidKeyID, or kid is "" for a key set that allows it (HS256).
	Lookup(ctx context.Context, kid string) (Key, error)
	// Ready reports whether the set holds keys; health checks use it so a
	// pod does not take traffic it would reject with Unavailable.
	Ready() bool
	// Keys returns the current public keys, ordered by ID, for inspection
	// and publishing. It never returns secret (HS256) material.
	Keys() []Key
	// Generation changes whenever the set of keys changes. A cache of
	// verified tokens records it and flushes when it differs, so a removed
	// key stops verifying at once. 0 means "no keys loaded yet".
	Generation() uint64
}

// kidOptional is implemented by key sets where a token need not name its
// key. It is unexported so only HS256 mode can opt out of the kid rule.
type kidOptional interface{ allowsMissingKeyID() bool }

// StaticKeySet is a fixed set of asymmetric keys. It serves tests and
// in-process callers that already hold their keys (e.g. the Auth service
// verifying its own tokens).
type StaticKeySet struct {
	keys map[string]Key
}

var _ KeySet = (*StaticKeySet)(nil)

// NewStaticKeySet builds a set from keys made with NewKey. Every key needs a
// distinct non-empty ID; HS256 keys are refused (use NewSecretKeySet), since
// mixing a shared secret into an asymmetric set invites algorithm confusion.
func NewStaticKeySet(keys ...Key) (*StaticKeySet, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("authn: static key set needs at least one key")
	}
	m := make(map[string]Key, len(keys))
	for _, k := range keys {
		// Re-bind rather than trust the caller-built struct: this re-checks
		// strength and the algorithm binding.
		nk, err := NewKey(k.ID, k.Public)
		if err != nil {
			return nil, err
		}
		if nk.Algorithm != k.Algorithm {
			return nil, fmt.Errorf("authn: key %q: algorithm %q does not match its key type (%s)", k.ID, k.Algorithm, nk.Algorithm)
		}
		if nk.Algorithm == AlgHS256 {
			return nil, fmt.Errorf("authn: key %q: HS256 secrets belong in NewSecretKeySet", k.ID)
		}
		if _, dup := m[nk.ID]; dup {
			return nil, fmt.Errorf("authn: duplicate key id %q", nk.ID)
		}
		m[nk.ID] = nk
	}
	return &StaticKeySet{keys: m}, nil
}

// Lookup implements KeySet.
func (s *StaticKeySet) Lookup(_ context.Context, kid string) (Key, error) {
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return Key{}, ErrUnknownKey
}

// Ready implements KeySet; a static set is always ready.
func (s *StaticKeySet) Ready() bool { return true }

// Keys implements KeySet.
func (s *StaticKeySet) Keys() []Key { return sortedKeys(s.keys) }

// Generation implements KeySet; a static set never changes.
func (s *StaticKeySet) Generation() uint64 { return 1 }

// SecretKeySet is the HS256 "simple mode" kept from the first release
// (JWT_SECRET). Its limits, which is why asymmetric keys are the default:
//   - every verifier holds the secret and can therefore mint tokens;
//   - the secret cannot be published, so there is no JWKS;
//   - there is one key, so rotating it logs everyone out.
//
// Tokens may carry no kid or any well-formed kid: the one secret verifies
// them all, and the kid is only recorded in Claims.KeyID.
type SecretKeySet struct {
	key Key
}

var _ KeySet = (*SecretKeySet)(nil)

// NewSecretKeySet returns an HS256 key set. secret must be at least
// MinSecretSize bytes (e.g. `openssl rand -base64 48`); it is copied.
func NewSecretKeySet(secret []byte) (*SecretKeySet, error) {
	alg, pub, err := bindAlgorithm(secret)
	if err != nil {
		return nil, err
	}
	return &SecretKeySet{key: Key{Algorithm: alg, Public: pub}}, nil
}

// Lookup implements KeySet: it returns the secret whatever kid says.
func (s *SecretKeySet) Lookup(_ context.Context, _ string) (Key, error) { return s.key, nil }

// Ready implements KeySet; always true.
func (s *SecretKeySet) Ready() bool { return true }

// Keys implements KeySet. It returns nothing: a shared secret must never be
// inspected or published, and there is no public key to show.
func (s *SecretKeySet) Keys() []Key { return nil }

// Generation implements KeySet; the secret never changes.
func (s *SecretKeySet) Generation() uint64 { return 1 }

func (s *SecretKeySet) allowsMissingKeyID() bool { return true }
