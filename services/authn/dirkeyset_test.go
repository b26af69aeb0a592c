package authn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
)

func publicPEM(t testing.TB, priv any) []byte {
	t.Helper()
	var pub any
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		pub = k.Public()
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func pkcs8PEM(t testing.TB, priv any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func certPEM(t testing.TB, priv ed25519.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gatehouse-auth"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// testLogger sends key set logs to the test log, so a failing test shows
// why a reload was refused.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newDirKeySet(t *testing.T, dir string, opts ...authn.DirOption) *authn.DirKeySet {
	t.Helper()
	ks, err := authn.NewDirKeySet(context.Background(), dir, testLogger(t), opts...)
	if err != nil {
		t.Fatalf("NewDirKeySet: %v", err)
	}
	t.Cleanup(func() { _ = ks.Close() })
	return ks
}

func kids(ks authn.KeySet) string {
	var ids []string
	for _, k := range ks.Keys() {
		ids = append(ids, k.ID+"="+k.Algorithm)
	}
	return strings.Join(ids, ",")
}

// eventually polls cond for up to 5s: reloads are asynchronous.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDirKeySetLoadsEveryPEMForm(t *testing.T) {
	dir := t.TempDir()
	ecDER, err := x509.MarshalECPrivateKey(ecKey())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "ed-pub.pem"), publicPEM(t, edKey()))
	writeFile(t, filepath.Join(dir, "ed-cert.crt"), certPEM(t, newEd25519(t)))
	writeFile(t, filepath.Join(dir, "ed-priv.key"), pkcs8PEM(t, newEd25519(t)))
	writeFile(t, filepath.Join(dir, "ec-sec1.pem"), append([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})...))
	writeFile(t, filepath.Join(dir, "rsa-pkcs1.pem"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey())}))
	writeFile(t, filepath.Join(dir, "rsa-pub"), publicPEM(t, rsaKey())) // no extension
	// Skipped: dotfiles, Kubernetes' bookkeeping names, subdirectories.
	writeFile(t, filepath.Join(dir, ".hidden.pem"), []byte("not a key"))
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "subdir", "nested.pem"), []byte("not a key"))

	ks := newDirKeySet(t, dir)
	want := "ec-sec1=ES256,ed-cert=EdDSA,ed-priv=EdDSA,ed-pub=EdDSA,rsa-pkcs1=RS256,rsa-pub=RS256"
	if got := kids(ks); got != want {
		t.Errorf("keys = %s\nwant   %s", got, want)
	}
	for _, k := range ks.Keys() {
		switch k.Public.(type) {
		case ed25519.PublicKey, *ecdsa.PublicKey, *rsa.PublicKey:
		default:
			t.Errorf("key %s holds %T, want a public key", k.ID, k.Public)
		}
	}
	if !ks.Ready() || ks.Generation() != 1 {
		t.Errorf("Ready/Generation = %v/%d", ks.Ready(), ks.Generation())
	}
}

func TestDirKeySetRefusesBadDirectories(t *testing.T) {
	tests := map[string]map[string][]byte{
		"empty":          {},
		"only dotfiles":  {".k.pem": publicPEM(t, edKey())},
		"weak RSA":       {"rsa.pem": publicPEM(t, rsaWeakKey())},
		"P-384":          {"ec.pem": publicPEM(t, ecP384Key())},
		"not PEM":        {"k.pem": []byte("hello")},
		"kid with space": {"my key.pem": publicPEM(t, edKey())},
		"two keys, one kid": {
			"k.pem": publicPEM(t, edKey()),
			"k.pub": publicPEM(t, newEd25519(t)),
		},
		"oversized file": {"k.pem": append(publicPEM(t, edKey()), make([]byte, 70<<10)...)},
	}
	for name, files := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for f, data := range files {
				writeFile(t, filepath.Join(dir, f), data)
			}
			if ks, err := authn.NewDirKeySet(context.Background(), dir, nil); err == nil {
				_ = ks.Close()
				t.Fatalf("NewDirKeySet accepted the directory: %s", kids(ks))
			}
		})
	}
	if _, err := authn.NewDirKeySet(context.Background(), filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("missing directory accepted")
	}
}

func TestDirKeySetSameKeyPairUnderOneKid(t *testing.T) {
	// A kubernetes.io/tls Secret holds tls.crt and tls.key for one key pair.
	dir := t.TempDir()
	priv := newEd25519(t)
	writeFile(t, filepath.Join(dir, "tls.crt"), certPEM(t, priv))
	writeFile(t, filepath.Join(dir, "tls.key"), pkcs8PEM(t, priv))
	if got := kids(newDirKeySet(t, dir)); got != "tls=EdDSA" {
		t.Errorf("keys = %s, want tls=EdDSA", got)
	}
}

// k8sSecretDir mimics how the kubelet mounts and updates a Secret volume
// (AtomicWriter): files live in a timestamped directory, "..data" points at
// it, and each visible name is a symlink through "..data".
type k8sSecretDir struct {
	t       *testing.T
	dir     string
	current string
	visible map[string]bool
	n       int
}

func newK8sSecretDir(t *testing.T, files map[string][]byte) *k8sSecretDir {
	d := &k8sSecretDir{t: t, dir: t.TempDir(), visible: map[string]bool{}}
	d.update(files)
	return d
}

// update performs the kubelet's sequence: write a new timestamped dir,
// point ..data_tmp at it, rename it over ..data (the atomic switch), add
// symlinks for new names, remove symlinks for dropped names, delete the
// old timestamped dir.
func (d *k8sSecretDir) update(files map[string][]byte) {
	t := d.t
	d.n++
	ts := "..2026_11_21_10_00_0" + string(rune('0'+d.n))
	if err := os.Mkdir(filepath.Join(d.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		writeFile(t, filepath.Join(d.dir, ts, name), data)
	}
	tmp := filepath.Join(d.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		if !d.visible[name] {
			if err := os.Symlink(filepath.Join("..data", name), filepath.Join(d.dir, name)); err != nil {
				t.Fatal(err)
			}
			d.visible[name] = true
		}
	}
	for name := range d.visible {
		if _, ok := files[name]; !ok {
			if err := os.Remove(filepath.Join(d.dir, name)); err != nil {
				t.Fatal(err)
			}
			delete(d.visible, name)
		}
	}
	if d.current != "" {
		if err := os.RemoveAll(filepath.Join(d.dir, d.current)); err != nil {
			t.Fatal(err)
		}
	}
	d.current = ts
}

func TestDirKeySetFollowsKubernetesSecretSwap(t *testing.T) {
	oldKey, nextKey := newEd25519(t), newEd25519(t)
	old := authntest.NewSignerWithKey(t, "key-2026-01", oldKey)
	next := authntest.NewSignerWithKey(t, "key-2026-02", nextKey)
	oldPEM, nextPEM := publicPEM(t, oldKey), publicPEM(t, nextKey)

	secret := newK8sSecretDir(t, map[string][]byte{"key-2026-01.pem": oldPEM})
	// A long rescan interval: this test is about the fsnotify path.
	ks := newDirKeySet(t, secret.dir, authn.WithRescanInterval(time.Hour))
	v, err := authn.NewVerifier(ks, authntest.DefaultIssuer, authntest.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	oldToken, nextToken := old.Token(t, "u"), next.Token(t, "u")
	if _, err := v.Verify(ctx, oldToken); err != nil {
		t.Fatalf("old key before rotation: %v", err)
	}
	if _, err := v.Verify(ctx, nextToken); !errors.Is(err, authn.ErrUnknownKey) {
		t.Fatalf("new key before rotation: err = %v, want ErrUnknownKey", err)
	}

	// Step 1 of a zero-downtime rotation: publish the new key next to the old.
	gen := ks.Generation()
	secret.update(map[string][]byte{"key-2026-01.pem": oldPEM, "key-2026-02.pem": nextPEM})
	eventually(t, "the added key", func() bool { _, err := v.Verify(ctx, nextToken); return err == nil })
	if _, err := v.Verify(ctx, oldToken); err != nil {
		t.Errorf("old key during rotation: %v", err)
	}
	if ks.Generation() <= gen {
		t.Errorf("generation did not move on change: %d -> %d", gen, ks.Generation())
	}

	// Step 2: retire the old key.
	secret.update(map[string][]byte{"key-2026-02.pem": nextPEM})
	eventually(t, "the removed key to stop verifying", func() bool {
		_, err := v.Verify(ctx, oldToken)
		return errors.Is(err, authn.ErrUnknownKey)
	})
	if _, err := v.Verify(ctx, nextToken); err != nil {
		t.Errorf("new key after rotation: %v", err)
	}
	if got := kids(ks); got != "key-2026-02=EdDSA" {
		t.Errorf("keys = %s", got)
	}
}

func TestDirKeySetPlainDirectoryAddRemove(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.pem"), publicPEM(t, newEd25519(t)))
	ks := newDirKeySet(t, dir, authn.WithRescanInterval(time.Hour))

	writeFile(t, filepath.Join(dir, "b.pem"), publicPEM(t, ecKey()))
	eventually(t, "key b", func() bool { return kids(ks) == "a=EdDSA,b=ES256" })

	if err := os.Remove(filepath.Join(dir, "a.pem")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "key a to go", func() bool { return kids(ks) == "b=ES256" })
	if _, err := ks.Lookup(context.Background(), "a"); !errors.Is(err, authn.ErrUnknownKey) {
		t.Errorf("Lookup(a) after removal: %v", err)
	}
}

func TestDirKeySetFailedReloadKeepsPreviousKeys(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.pem"), publicPEM(t, edKey()))
	ks := newDirKeySet(t, dir, authn.WithRescanInterval(time.Hour))
	gen := ks.Generation()

	for name, data := range map[string][]byte{
		"garbage.pem": []byte("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n"),
		"weak.pem":    publicPEM(t, rsaWeakKey()),
	} {
		writeFile(t, filepath.Join(dir, name), data)
		if err := ks.Reload(); err == nil {
			t.Errorf("%s: Reload succeeded", name)
		}
		if got := kids(ks); got != "a=EdDSA" || ks.Generation() != gen {
			t.Errorf("%s: keys = %s, generation %d; want the previous set", name, got, ks.Generation())
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}

	// Removing every key is refused too: an empty mount is a glitch.
	if err := os.Remove(filepath.Join(dir, "a.pem")); err != nil {
		t.Fatal(err)
	}
	if err := ks.Reload(); err == nil {
		t.Error("Reload of an empty directory succeeded")
	}
	if _, err := ks.Lookup(context.Background(), "a"); err != nil {
		t.Errorf("Lookup(a) after a refused reload: %v", err)
	}
}

func TestDirKeySetNoOpReloadKeepsGeneration(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.pem"), publicPEM(t, edKey()))
	ks := newDirKeySet(t, dir, authn.WithRescanInterval(time.Hour))
	gen := ks.Generation()
	// Rewriting identical content (e.g. a Secret re-applied unchanged) must
	// not flush token caches.
	writeFile(t, filepath.Join(dir, "a.pem"), publicPEM(t, edKey()))
	if err := ks.Reload(); err != nil {
		t.Fatal(err)
	}
	if ks.Generation() != gen {
		t.Errorf("generation moved on a no-op reload: %d -> %d", gen, ks.Generation())
	}
}

func TestDirKeySetPeriodicRescanCatchesMissedEvents(t *testing.T) {
	// The watched directory holds a symlink to a file elsewhere; changing
	// that file produces no event in the watched directory, so only the
	// periodic rescan can notice.
	outside := t.TempDir()
	target := filepath.Join(outside, "real.pem")
	writeFile(t, target, publicPEM(t, edKey()))
	dir := t.TempDir()
	if err := os.Symlink(target, filepath.Join(dir, "k.pem")); err != nil {
		t.Fatal(err)
	}
	ks := newDirKeySet(t, dir, authn.WithRescanInterval(50*time.Millisecond))
	if got := kids(ks); got != "k=EdDSA" {
		t.Fatalf("keys = %s", got)
	}
	writeFile(t, target, publicPEM(t, ecKey()))
	eventually(t, "the rescan to see the new key", func() bool { return kids(ks) == "k=ES256" })
}

func TestDirKeySetStopsWithContext(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.pem"), publicPEM(t, edKey()))
	ctx, cancel := context.WithCancel(context.Background())
	ks, err := authn.NewDirKeySet(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	_ = ks.Close() // waits for the watcher; goleak in TestMain checks it is gone
	_ = ks.Close() // idempotent
	if _, err := ks.Lookup(context.Background(), "a"); err != nil {
		t.Errorf("keys unusable after Close: %v", err)
	}
}

// TestDirKeySetKeepsNoPrivateKey: given a private key file, the public
// verifier keeps only the public half; the Auth service's own key
// directory is where private keys live.
func TestDirKeySetKeepsNoPrivateKey(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	writeFile(t, filepath.Join(dir, "a.pem"), pkcs8PEM(t, priv))
	ks := newDirKeySet(t, dir)
	keys := ks.Keys()
	if len(keys) != 1 {
		t.Fatalf("Keys() = %v, want one", keys)
	}
	pub, ok := keys[0].Public.(ed25519.PublicKey)
	if !ok || !pub.Equal(priv.Public()) {
		t.Fatalf("Keys()[0].Public = %T, want the ed25519.PublicKey of the file's private key", keys[0].Public)
	}
}
