package authn_test

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/services/authn"
)

func TestNewKeyBindsOneAlgorithm(t *testing.T) {
	tests := []struct {
		name    string
		kid     string
		key     any
		wantAlg string
		wantErr string
	}{
		{name: "ed25519 public", kid: "ed", key: edKey().Public(), wantAlg: authn.AlgEdDSA},
		{name: "ed25519 private derives public", kid: "ed", key: edKey(), wantAlg: authn.AlgEdDSA},
		{name: "p256 public", kid: "ec", key: &ecKey().PublicKey, wantAlg: authn.AlgES256},
		{name: "p256 private", kid: "ec", key: ecKey(), wantAlg: authn.AlgES256},
		{name: "rsa 2048", kid: "rsa", key: &rsaKey().PublicKey, wantAlg: authn.AlgRS256},
		{name: "rsa 2048 private", kid: "rsa", key: rsaKey(), wantAlg: authn.AlgRS256},
		{name: "hs256 secret", kid: "", key: hsSecret, wantAlg: authn.AlgHS256},
		{name: "p384 refused", kid: "ec", key: &ecP384Key().PublicKey, wantErr: "only P-256"},
		{name: "rsa 1024 refused", kid: "rsa", key: &rsaWeakKey().PublicKey, wantErr: "1024 bits refused"},
		{name: "short secret refused", kid: "", key: make([]byte, 31), wantErr: "at least 32 bytes"},
		{name: "truncated ed25519 refused", kid: "ed", key: ed25519.PublicKey(make([]byte, 31)), wantErr: "size"},
		{name: "unsupported type", kid: "x", key: "a string", wantErr: "unsupported key type"},
		{name: "asymmetric key needs kid", kid: "", key: edKey().Public(), wantErr: "key id"},
		{name: "kid with slash", kid: "a/b", key: edKey().Public(), wantErr: "key id"},
		{name: "kid too long", kid: strings.Repeat("k", 65), key: edKey().Public(), wantErr: "key id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := authn.NewKey(tt.kid, tt.key)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewKey error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewKey: %v", err)
			}
			if k.Algorithm != tt.wantAlg {
				t.Errorf("Algorithm = %q, want %q", k.Algorithm, tt.wantAlg)
			}
			switch k.Public.(type) {
			case ed25519.PrivateKey:
				t.Errorf("Key.Public holds a private key")
			}
		})
	}
}

func TestValidKeyID(t *testing.T) {
	for kid, want := range map[string]bool{
		"2026-01.ed25519": true, "A_b-9": true, strings.Repeat("k", 64): true,
		"": false, strings.Repeat("k", 65): false, "../x": false, "a/b": false, `a\b`: false,
		"a b": false, "é": false, "a\x00": false, "a\n": false,
	} {
		if got := authn.ValidKeyID(kid); got != want {
			t.Errorf("ValidKeyID(%q) = %v, want %v", kid, got, want)
		}
	}
}

func TestNewSecretKeySet(t *testing.T) {
	if _, err := authn.NewSecretKeySet([]byte("too-short-secret")); err == nil || !strings.Contains(err.Error(), "at least 32 bytes") {
		t.Fatalf("short secret: err = %v, want refusal naming the 32-byte minimum", err)
	}
	secret := append([]byte(nil), hsSecret...)
	ks, err := authn.NewSecretKeySet(secret)
	if err != nil {
		t.Fatal(err)
	}
	secret[0] ^= 0xff // the set must have copied it
	k, err := ks.Lookup(context.Background(), "anything")
	if err != nil || k.Algorithm != authn.AlgHS256 || string(k.Public.([]byte)) != string(hsSecret) {
		t.Fatalf("Lookup = %+v, %v", k, err)
	}
	if keys := ks.Keys(); len(keys) != 0 {
		t.Errorf("Keys() exposes the secret: %d keys", len(keys))
	}
	if !ks.Ready() || ks.Generation() == 0 {
		t.Errorf("Ready/Generation = %v/%d", ks.Ready(), ks.Generation())
	}
}

func TestNewStaticKeySet(t *testing.T) {
	ed := mustKey(t, "ed", edKey())
	if _, err := authn.NewStaticKeySet(); err == nil {
		t.Error("empty set accepted")
	}
	if _, err := authn.NewStaticKeySet(ed, ed); err == nil {
		t.Error("duplicate kid accepted")
	}
	if _, err := authn.NewStaticKeySet(authn.Key{ID: "hs", Algorithm: authn.AlgHS256, Public: hsSecret}); err == nil {
		t.Error("HS256 key accepted in an asymmetric set")
	}
	if _, err := authn.NewStaticKeySet(authn.Key{ID: "ed", Algorithm: authn.AlgRS256, Public: edKey().Public()}); err == nil {
		t.Error("key with an algorithm that does not match its type accepted")
	}
	ks, err := authn.NewStaticKeySet(ed, mustKey(t, "ec", ecKey()))
	if err != nil {
		t.Fatal(err)
	}
	if got := ks.Keys(); len(got) != 2 || got[0].ID != "ec" || got[1].ID != "ed" {
		t.Errorf("Keys() = %+v, want ec, ed", got)
	}
	if _, err := ks.Lookup(context.Background(), "nope"); err == nil {
		t.Error("unknown kid found")
	}
}
