package authn

import (
	"crypto/sha256"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// WithCache makes the Verifier remember up to size successful
// verifications, so a client that sends the same token on every call pays
// for one signature check, not one per call. size <= 0 disables it.
//
// What keeps it safe:
//   - entries are keyed by the token's SHA-256, so the cache holds no token;
//   - an entry is used only until the token's exp, never longer (and
//     without the leeway Verify allows);
//   - every entry belongs to the key set's Generation at verification time:
//     when the key set changes (a key is removed or replaced) the whole cache
//     is dropped, so a removed key's tokens are re-checked and refused;
//   - only successes are cached: a failure is re-evaluated every time.
func WithCache(size int) VerifierOption {
	return func(c *verifierConfig) { c.cacheSize = size }
}

type verifiedCache struct {
	entries *lru.Cache[[sha256.Size]byte, cachedClaims]
	gen     atomic.Uint64 // key-set generation the entries belong to
}

type cachedClaims struct {
	claims *Claims
	gen    uint64
}

func newVerifiedCache(size int) *verifiedCache {
	if size <= 0 {
		return nil
	}
	entries, err := lru.New[[sha256.Size]byte, cachedClaims](size)
	if err != nil {
		return nil // only for size <= 0, excluded above
	}
	return &verifiedCache{entries: entries}
}

// get returns the cached claims for a token hash if they were verified
// under the current key generation and the token has not expired.
func (c *verifiedCache) get(key [sha256.Size]byte, gen uint64, now time.Time) (*Claims, bool) {
	if c.gen.Load() != gen {
		// The key set changed since these entries were verified.
		c.entries.Purge()
		c.gen.Store(gen)
		return nil, false
	}
	e, ok := c.entries.Get(key)
	if !ok || e.gen != gen || !now.Before(e.claims.ExpiresAt) {
		return nil, false
	}
	claims := *e.claims // callers get their own copy of the struct
	return &claims, true
}

func (c *verifiedCache) add(key [sha256.Size]byte, gen uint64, claims *Claims) {
	stored := *claims
	c.entries.Add(key, cachedClaims{claims: &stored, gen: gen})
}

// CacheLen reports how many verifications are cached (for tests and metrics).
func (v *Verifier) CacheLen() int {
	if v.cache == nil {
		return 0
	}
	return v.cache.entries.Len()
}
