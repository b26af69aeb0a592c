package authn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/gatehouse-dev/gatehouse/services/authn"
)

// TestMain fails the package if any test leaves a goroutine behind: key set
// watchers and fetchers are long-lived, so a missing Close would leak.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Test keys are generated once per test binary: RSA generation is slow
// enough under -race to matter.
var (
	edKey = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		must(err)
		return k
	})
	ecKey = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		return k
	})
	ecP384Key = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(err)
		return k
	})
	rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		return k
	})
	rsaWeakKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 1024)
		must(err)
		return k
	})
	hsSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")
)

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func newEd25519(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// countingKeySet records lookups, to prove that some rules reject a token
// before the key set is consulted at all.
type countingKeySet struct {
	authn.KeySet
	lookups atomic.Int64
}

func (c *countingKeySet) Lookup(ctx context.Context, kid string) (authn.Key, error) {
	c.lookups.Add(1)
	return c.KeySet.Lookup(ctx, kid)
}

func mustKey(t testing.TB, kid string, k any) authn.Key {
	t.Helper()
	key, err := authn.NewKey(kid, k)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
