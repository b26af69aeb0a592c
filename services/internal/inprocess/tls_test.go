package inprocess

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/gatehouse-dev/gatehouse/hack/pki"
	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/internal/auth"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/rpcerr"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/tlsfiles"
)

// pairTLS is the PKI of a TLS pair: one CA; the User service's
// certificate for localhost; the Auth service's for localhost and its
// identity gatehouse-auth (SERVICE_PEER_NAMES' default).
type pairTLS struct {
	ca               *pki.CA
	dir              string
	userEnv, authEnv []string
	operator         pki.Files // a client certificate for tools, "operator.test"
}

func newPairTLS(t *testing.T) *pairTLS {
	t.Helper()
	ca, err := pki.NewCA("gatehouse test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := &pairTLS{ca: ca, dir: t.TempDir()}
	env := func(f pki.Files) []string {
		return []string{"TLS_CERT_FILE=" + f.Cert, "TLS_KEY_FILE=" + f.Key, "TLS_CA_FILE=" + f.CA, "TLS_RELOAD_INTERVAL=50ms"}
	}
	p.userEnv = env(p.issue(t, "user", "localhost", "127.0.0.1"))
	p.authEnv = env(p.issue(t, "auth", "localhost", "127.0.0.1", "gatehouse-auth"))
	p.operator = p.issue(t, "operator", "operator.test")
	return p
}

// issue writes a certificate of the pair's CA for names under dir/name.
func (p *pairTLS) issue(t *testing.T, name string, names ...string) pki.Files {
	t.Helper()
	_, f, err := p.ca.IssueFiles(filepath.Join(p.dir, name), pki.Request{Names: names})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// client is the credentials of a tool trusting the pair's CA, presenting
// cert (nil: the operator's certificate).
func (p *pairTLS) client(t *testing.T, cert *pki.Files) credentials.TransportCredentials {
	t.Helper()
	if cert == nil {
		cert = &p.operator
	}
	f, err := tlsfiles.Open(tlsfiles.Config{CertFile: cert.Cert, KeyFile: cert.Key, CAFile: cert.CA, ClientAuth: "none", ReloadInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f.ClientCredentials()
}

// anonymous is a TLS client that trusts the CA and has no certificate.
func (p *pairTLS) anonymous(t *testing.T) credentials.TransportCredentials {
	t.Helper()
	f, err := tlsfiles.Open(tlsfiles.Config{CAFile: filepath.Join(p.dir, "user", "ca.crt"), ClientAuth: "none", ReloadInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f.ClientCredentials()
}

// TestTLSPair: with TLS on every port, the whole flow works (sign-up,
// login through Auth's mutual-TLS call to VerifyPassword, a call verified
// with keys fetched over https, refresh), and plaintext is refused on
// every port that carries a secret or a key.
func TestTLSPair(t *testing.T) {
	p := startTLSPair(t)
	ctx := context.Background()
	created, err := p.users.CreateUser(ctx, &userv1.CreateUserRequest{Email: "tls@example.com", Password: "velvet anchor 42", DisplayName: "T"})
	if err != nil {
		t.Fatal(err)
	}
	login, err := p.auth.Login(ctx, &authv1.LoginRequest{Email: "tls@example.com", Password: "velvet anchor 42"})
	if err != nil {
		t.Fatalf("login over TLS: %v", err)
	}
	if _, err := p.users.GetUser(bearer(login.GetAccessToken()), &userv1.GetUserRequest{Id: created.GetUser().GetId()}); err != nil {
		t.Fatalf("GetUser with a token verified by keys fetched over https: %v", err)
	}
	if _, err := p.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: login.GetRefreshToken()}); err != nil {
		t.Fatalf("refresh over TLS: %v", err)
	}

	for name, addr := range map[string]string{"user gRPC": p.userAddr, "auth gRPC": p.authConn.CanonicalTarget()} {
		addr = strings.TrimPrefix(addr, "dns:///")
		conn := dialWith(t, addr, insecure.NewCredentials())
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		_ = conn.Close()
		wantCode(t, err, codes.Unavailable)
		_ = name
	}
	jwks := strings.Replace(p.jwksURL, "https://", "http://", 1)
	resp, err := http.Get(jwks)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(body), "keys") {
		t.Fatalf("plaintext JWKS fetch: %d %q, want 400 and no keys", resp.StatusCode, body)
	}
}

// TestVerifyPasswordNeedsTheAuthCertificate: the service token alone does
// not open VerifyPassword (nor the other service-only methods): the
// connection must carry the Auth service's certificate.
func TestVerifyPasswordNeedsTheAuthCertificate(t *testing.T) {
	p := startTLSPair(t)
	token := auth.NewServiceCredentials(p.authApp.Issuer, "gatehouse", time.Minute)
	intruder := p.tls.issue(t, "intruder", "intruder.test")
	authCert := pki.Files{Cert: envValue(p.tls.authEnv, "TLS_CERT_FILE"), Key: envValue(p.tls.authEnv, "TLS_KEY_FILE"), CA: envValue(p.tls.authEnv, "TLS_CA_FILE")}
	tests := []struct {
		name  string
		creds credentials.TransportCredentials
		want  codes.Code
	}{
		{"no client certificate", p.tls.anonymous(t), codes.PermissionDenied},
		{"another name from the same CA", p.tls.client(t, &intruder), codes.PermissionDenied},
		{"the Auth service's certificate", p.tls.client(t, &authCert), codes.Unauthenticated}, // then the password is checked: wrong
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := grpc.NewClient(p.userAddr, grpc.WithTransportCredentials(tc.creds), grpc.WithPerRPCCredentials(token))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			users := userv1.NewUserServiceClient(conn)
			_, err = users.VerifyPassword(context.Background(), &userv1.VerifyPasswordRequest{Email: "admin@example.com", Password: "not the password"})
			wantCode(t, err, tc.want)
			if tc.want == codes.PermissionDenied {
				if !strings.Contains(err.Error(), "gatehouse-auth") {
					t.Fatalf("refusal %q does not say which certificate is needed", err)
				}
				_, err = users.GetSessionState(context.Background(), &userv1.GetSessionStateRequest{Id: "00000000-0000-0000-0000-000000000000"})
				wantCode(t, err, codes.PermissionDenied)
			}
		})
	}
}

// TestRequireClientCertificates: under TLS_CLIENT_AUTH=require a client
// without a certificate cannot even connect; the Auth service still logs
// users in.
func TestRequireClientCertificates(t *testing.T) {
	p := startTLSPair(t, "TLS_CLIENT_AUTH=require")
	conn := dialWith(t, p.userAddr, p.tls.anonymous(t))
	defer func() { _ = conn.Close() }()
	_, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	wantCode(t, err, codes.Unavailable)
	if _, err := p.auth.Login(context.Background(), &authv1.LoginRequest{Email: "admin@example.com", Password: "root keeps the keys"}); err != nil {
		t.Fatalf("login with the User service requiring client certificates: %v", err)
	}
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

// TestVerifyPasswordHasItsOwnLimit: whoever holds the Auth service's
// credentials still guesses one account's password only
// VERIFY_PASSWORD_RATE times a minute; other accounts are not touched.
func TestVerifyPasswordHasItsOwnLimit(t *testing.T) {
	p := startTLSPair(t, "VERIFY_PASSWORD_RATE=3")
	ctx := context.Background()
	if _, err := p.users.CreateUser(ctx, &userv1.CreateUserRequest{Email: "other@example.com", Password: "velvet anchor 42", DisplayName: "O"}); err != nil {
		t.Fatal(err)
	}
	authCert := pki.Files{Cert: envValue(p.tls.authEnv, "TLS_CERT_FILE"), Key: envValue(p.tls.authEnv, "TLS_KEY_FILE"), CA: envValue(p.tls.authEnv, "TLS_CA_FILE")}
	conn, err := grpc.NewClient(p.userAddr, grpc.WithTransportCredentials(p.tls.client(t, &authCert)),
		grpc.WithPerRPCCredentials(auth.NewServiceCredentials(p.authApp.Issuer, "gatehouse", time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	users := userv1.NewUserServiceClient(conn)
	guess := func(email, pw string) error {
		_, err := users.VerifyPassword(ctx, &userv1.VerifyPasswordRequest{Email: email, Password: pw})
		return err
	}
	for i := range 3 {
		if err := guess("admin@example.com", fmt.Sprintf("guess %d", i)); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("guess %d: %v, want Unauthenticated", i, err)
		}
	}
	err = guess("admin@example.com", "root keeps the keys")
	wantCode(t, err, codes.ResourceExhausted)
	if d, ok := rpcerr.RetryDelay(err); !ok || d <= 0 {
		t.Fatalf("limited VerifyPassword without a retry delay: %v", err)
	}
	if err := guess("other@example.com", "velvet anchor 42"); err != nil {
		t.Fatalf("another account after the first was limited: %v", err)
	}
}
