package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/authn"
)

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeEd25519(t *testing.T, dir, kid string, private bool) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var der []byte
	typ := "PRIVATE KEY"
	if private {
		der, err = x509.MarshalPKCS8PrivateKey(priv)
	} else {
		typ = "PUBLIC KEY"
		der, err = x509.MarshalPKIXPublicKey(priv.Public())
	}
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, kid+".pem"), typ, der)
	return priv
}

// TestSigningKeyDir: private key files yield signers, public key files only
// verify, the active-kid file is not a key, and a key added later signs
// after the directory changes.
func TestSigningKeyDir(t *testing.T) {
	dir := t.TempDir()
	privA := writeEd25519(t, dir, "a", true)
	writeEd25519(t, dir, "verify-only", false)
	if err := os.WriteFile(filepath.Join(dir, ActiveKeyFile), []byte("a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := OpenSigningKeyDir(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ks.Close() })

	if got := strings.Join(ks.SignerIDs(), ","); got != "a" {
		t.Fatalf("SignerIDs = %q, want a", got)
	}
	key, signer, ok := ks.Signer("a")
	if !ok || key.Algorithm != authn.AlgEdDSA || !privA.Public().(ed25519.PublicKey).Equal(signer.Public()) {
		t.Fatalf("Signer(a) = %v, %v, %v", key, signer, ok)
	}
	if _, _, ok := ks.Signer("verify-only"); ok {
		t.Error("a public key file yielded a signer")
	}
	if _, err := ks.Lookup(context.Background(), "verify-only"); err != nil {
		t.Errorf("public-only key not usable for verification: %v", err)
	}
	if got := len(ks.Keys()); got != 2 {
		t.Errorf("Keys() has %d keys, want 2", got)
	}
	gen := ks.Generation()
	writeEd25519(t, dir, "b", true)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, ok := ks.Signer("b"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("key b never became a signer")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ks.Generation() == gen {
		t.Error("generation did not move when a key was added")
	}
}

// TestSigningKeyDirRefusesEmpty: a directory the service could
// not sign from is an error at start, naming the problem.
func TestSigningKeyDirRefusesEmpty(t *testing.T) {
	_, err := OpenSigningKeyDir(context.Background(), t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "no key files") {
		t.Fatalf("empty dir: err = %v, want no key files", err)
	}
}
