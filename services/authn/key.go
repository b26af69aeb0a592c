package authn

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Signature algorithms, spelled as in the JWS "alg" header. Each key is bound
// to exactly one of them (see NewKey); a token whose alg differs from its
// key's is rejected, which closes the classic algorithm-confusion attacks
// (an HS256 token "signed" with an RSA public key, or alg "none").
const (
	AlgEdDSA = "EdDSA" // Ed25519
	AlgES256 = "ES256" // ECDSA P-256 with SHA-256
	AlgRS256 = "RS256" // RSA PKCS#1 v1.5 with SHA-256
	AlgHS256 = "HS256" // HMAC-SHA-256 with a shared secret
)

// Key-strength and key-id limits.
const (
	// MinRSABits is the smallest RSA modulus accepted: NIST SP 800-131A
	// disallows anything smaller for signatures.
	MinRSABits = 2048

	// MinSecretSize is the smallest HS256 secret accepted, in bytes: an HMAC
	// key shorter than the hash output (32 bytes for SHA-256) weakens it, and
	// short secrets are usually human-chosen and brute-forceable offline from
	// any single token.
	MinSecretSize = 32

	// MaxKeyIDLength bounds a kid. kids are chosen by us (file names, JWKS
	// entries), so anything longer is an attack or a mistake.
	MaxKeyIDLength = 64
)

// Key is one verification key bound to one algorithm.
type Key struct {
	// ID is the kid tokens name this key by. Empty only for the HS256
	// secret of NewSecretKeySet.
	ID string
	// Algorithm is the only JWS alg this key verifies: AlgEdDSA, AlgES256,
	// AlgRS256 or AlgHS256.
	Algorithm string
	// Public is ed25519.PublicKey, *ecdsa.PublicKey, *rsa.PublicKey, or
	// []byte for HS256. It never holds private key material. Treat it as
	// read-only: key sets hand out the same value to every caller.
	Public any
}

// NewKey binds key to its algorithm and checks its strength:
// Ed25519 → EdDSA; ECDSA on P-256 → ES256 (other curves are refused because
// ES384/ES512 are not accepted anywhere in Gatehouse); RSA of at least
// MinRSABits → RS256; a []byte of at least MinSecretSize → HS256.
//
// key may also be a private key (ed25519.PrivateKey, *ecdsa.PrivateKey,
// *rsa.PrivateKey); only its public half is kept, so a Key never carries a
// secret that could leak through Keys() into a published JWKS.
//
// id must satisfy ValidKeyID, except that it may be empty for an HS256 key.
func NewKey(id string, key any) (Key, error) {
	alg, pub, err := bindAlgorithm(key)
	if err != nil {
		return Key{}, err
	}
	hsWithoutID := id == "" && alg == AlgHS256
	if !hsWithoutID && !ValidKeyID(id) {
		return Key{}, fmt.Errorf("authn: key id %q: must be 1-%d characters of [A-Za-z0-9._-]", truncate(id, MaxKeyIDLength+8), MaxKeyIDLength)
	}
	return Key{ID: id, Algorithm: alg, Public: pub}, nil
}

func bindAlgorithm(key any) (alg string, public any, err error) {
	switch k := key.(type) {
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return "", nil, errors.New("authn: invalid Ed25519 private key size")
		}
		return bindAlgorithm(k.Public())
	case *ecdsa.PrivateKey:
		return bindAlgorithm(&k.PublicKey)
	case *rsa.PrivateKey:
		return bindAlgorithm(&k.PublicKey)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", nil, errors.New("authn: invalid Ed25519 public key size")
		}
		return AlgEdDSA, slices.Clone(k), nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve != elliptic.P256() {
			name := "unknown"
			if k != nil && k.Curve != nil {
				name = k.Curve.Params().Name
			}
			return "", nil, fmt.Errorf("authn: ECDSA curve %s not supported: only P-256 (ES256)", name)
		}
		return AlgES256, k, nil
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return "", nil, errors.New("authn: invalid RSA public key")
		}
		if bits := k.N.BitLen(); bits < MinRSABits {
			return "", nil, fmt.Errorf("authn: RSA key of %d bits refused: at least %d bits required", bits, MinRSABits)
		}
		return AlgRS256, k, nil
	case []byte:
		if len(k) < MinSecretSize {
			return "", nil, fmt.Errorf("authn: HS256 secret of %d bytes refused: at least %d bytes required", len(k), MinSecretSize)
		}
		return AlgHS256, bytes.Clone(k), nil
	default:
		return "", nil, fmt.Errorf("authn: unsupported key type %T", key)
	}
}

// ValidKeyID reports whether kid is acceptable: 1 to MaxKeyIDLength
// characters from [A-Za-z0-9._-]. The Verifier applies it to the token
// header before any lookup, so an attacker-chosen kid can never reach a key
// set as a path ("../"), a huge string, or a control character in a log.
func ValidKeyID(kid string) bool {
	if kid == "" || len(kid) > MaxKeyIDLength {
		return false
	}
	return urlSafe(kid)
}

// urlSafe reports whether s holds only [A-Za-z0-9._-]: the base64url
// alphabet plus the dot. Key IDs are held to it (they become file and
// URL names), and so are whole tokens, since it is exactly the character
// set of the JWS compact serialization (RFC 7515 section 7.1).
func urlSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// sameKey reports whether two keys are interchangeable; key sets use it to
// bump their generation only when the verifying material really changed.
func sameKey(a, b Key) bool {
	if a.ID != b.ID || a.Algorithm != b.Algorithm {
		return false
	}
	switch pa := a.Public.(type) {
	case []byte:
		pb, ok := b.Public.([]byte)
		return ok && bytes.Equal(pa, pb)
	case interface{ Equal(crypto.PublicKey) bool }:
		return pa.Equal(b.Public)
	default:
		return false
	}
}

// sameKeys compares two kid-indexed key maps with sameKey.
func sameKeys(a, b map[string]Key) bool {
	if len(a) != len(b) {
		return false
	}
	for id, ka := range a {
		kb, ok := b[id]
		if !ok || !sameKey(ka, kb) {
			return false
		}
	}
	return true
}

// sortedKeys returns the keys of m ordered by ID, so Keys() output and
// log lines are deterministic.
func sortedKeys(m map[string]Key) []Key {
	out := make([]Key, 0, len(m))
	for _, k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b Key) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func keyIDs(m map[string]Key) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
