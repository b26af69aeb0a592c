package app

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func writePEM(t *testing.T, path string, key any) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRefusesToStartWithoutUsableKeys: every way of having no (usable)
// signing key stops start-up with a message that says what to do.
func TestRefusesToStartWithoutUsableKeys(t *testing.T) {
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakDir := t.TempDir()
	writePEM(t, filepath.Join(weakDir, "weak.pem"), weak)
	emptyDir := t.TempDir()
	pubDir := t.TempDir()
	strong, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&strong.PublicKey)
	_ = os.WriteFile(filepath.Join(pubDir, "pub.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	goodDir := t.TempDir()
	writePEM(t, filepath.Join(goodDir, "k1.pem"), strong)

	tests := []struct {
		name    string
		env     []string
		atLoad  bool // refused by LoadConfig rather than New
		wantErr string
	}{
		{"nothing configured", nil, true, "make keys"},
		{"short secret", []string{"JWT_SECRET=short"}, true, "JWT_SECRET must be at least 32 bytes"},
		{"both sources", []string{"JWT_SECRET=0123456789abcdef0123456789abcdef", "JWT_SIGNING_KEYS_DIR=" + goodDir}, true, "only one of"},
		{"empty directory", []string{"JWT_SIGNING_KEYS_DIR=" + emptyDir}, false, "make keys"},
		{"missing directory", []string{"JWT_SIGNING_KEYS_DIR=" + filepath.Join(emptyDir, "nope")}, false, "JWT_SIGNING_KEYS_DIR"},
		{"RSA 1024", []string{"JWT_SIGNING_KEYS_DIR=" + weakDir}, false, "2048"},
		{"only public keys", []string{"JWT_SIGNING_KEYS_DIR=" + pubDir}, false, "only public keys"},
		{"unknown active kid", []string{"JWT_SIGNING_KEYS_DIR=" + goodDir, "JWT_ACTIVE_KEY_ID=k9"}, false, `"k9" is not loaded`},
		{"access outlives refresh", []string{"JWT_SIGNING_KEYS_DIR=" + goodDir, "JWT_ACCESS_EXPIRY=1000h"}, true, "must be shorter than JWT_REFRESH_EXPIRY"},
		{"bad expiry", []string{"JWT_SIGNING_KEYS_DIR=" + goodDir, "JWT_ACCESS_EXPIRY=soon"}, true, `invalid JWT_ACCESS_EXPIRY="soon"`},
		{"issuer not a URL", []string{"JWT_SIGNING_KEYS_DIR=" + goodDir, "JWT_ISSUER=gatehouse-auth"}, true, "JWT_ISSUER: issuer \"gatehouse-auth\""},
		{"plaintext issuer with TLS", []string{"JWT_SIGNING_KEYS_DIR=" + goodDir, "TLS_CERT_FILE=/t/tls.crt", "TLS_KEY_FILE=/t/tls.key", "JWT_ISSUER=http://auth:8082"}, true, "JWT_ISSUER must be https://"},
		{"no client", []string{"JWT_SIGNING_KEYS_DIR=" + goodDir, "CLIENT_IDS=,"}, true, "CLIENT_IDS"},
		{"client id with a space", []string{"JWT_SIGNING_KEYS_DIR=" + goodDir, "CLIENT_IDS=web app"}, true, `CLIENT_IDS: "web app" is not a client id`},
		{"the service's client id", []string{"JWT_SIGNING_KEYS_DIR=" + goodDir, "CLIENT_IDS=web,service:gatehouse-auth"}, true, "the Auth service's own client id"},
		{"empty accepted issuer", []string{"JWT_SIGNING_KEYS_DIR=" + goodDir, "JWT_ACCEPTED_ISSUERS=gatehouse-auth,,"}, true, "JWT_ACCEPTED_ISSUERS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := append([]string{"DATABASE_URL=sqlite://" + filepath.Join(t.TempDir(), "auth.db")}, tt.env...)
			cfg, err := LoadConfig(env)
			if !tt.atLoad && err == nil {
				var a *App
				a, err = New(context.Background(), cfg, Options{})
				if a != nil {
					a.close()
				}
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error: %q", err)
			}
		})
	}
}

func TestStartsWithMinutesExpiry(t *testing.T) {
	dir := t.TempDir()
	strong, _ := rsa.GenerateKey(rand.Reader, 2048)
	writePEM(t, filepath.Join(dir, "k1.pem"), strong)
	cfg, err := LoadConfig([]string{"JWT_SIGNING_KEYS_DIR=" + dir, "JWT_ACCESS_EXPIRY=30", "DATABASE_URL=sqlite://" + filepath.Join(t.TempDir(), "a.db")})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AccessExpiry.Duration().Minutes() != 30 {
		t.Errorf("JWT_ACCESS_EXPIRY=30 parsed as %s", cfg.AccessExpiry)
	}
	a, err := New(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if a.Issuer.ActiveKeyID() != "k1" {
		t.Errorf("active kid = %q", a.Issuer.ActiveKeyID())
	}
}
