package inprocess

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
	authapp "github.com/gatehouse-dev/gatehouse/services/internal/auth/app"
	"github.com/gatehouse-dev/gatehouse/services/internal/faultproxy"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/rpcerr"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/server"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/telemetry"
	userapp "github.com/gatehouse-dev/gatehouse/services/internal/user/app"
	"github.com/gatehouse-dev/gatehouse/services/internal/user/password"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The OTLP-less tracer provider and grpc's DNS resolver may leave
		// these behind for a moment after Close.
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
	)
}

type pair struct {
	t        *testing.T
	userApp  *userapp.App
	keysDir  string
	authDB   string // the Auth service's SQLite file
	issuer   string // the Auth service's issuer URL, its HTTP port
	jwksURL  string
	users    userv1.UserServiceClient
	auth     authv1.AuthServiceClient
	spans    *tracetest.InMemoryExporter
	authApp  *authapp.App
	authConn *grpc.ClientConn
	userAddr string
	logs     *syncBuffer // both services' logs, at debug level
	// tls, in a pair started by startTLSPair: the CA both services trust
	// and what a client needs to call them.
	tls *pairTLS
}

// syncBuffer collects log lines from both services' goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func writeKey(t *testing.T, dir, kid string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, kid+".pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startPair starts both services wired as in production: Auth signs with
// a key directory, User verifies through Auth's JWKS over HTTP.
func startPair(t *testing.T, authEnv ...string) *pair {
	t.Helper()
	return startPairWith(t, nil, authEnv...)
}

// startTLSPair starts both services with TLS on every port, as the chart
// runs them: the JWKS over https, Auth calling User with its client
// certificate. userEnv adds to the User service's environment.
func startTLSPair(t *testing.T, userEnv ...string) *pair {
	t.Helper()
	return startPairWith(t, newPairTLS(t), userEnv...)
}

func startPairWith(t *testing.T, tlsOn *pairTLS, extraEnv ...string) *pair {
	t.Helper()
	p := &pair{t: t, keysDir: t.TempDir(), spans: tracetest.NewInMemoryExporter(), logs: &syncBuffer{}, tls: tlsOn}
	logger := telemetry.NewLogger(p.logs, slog.LevelDebug, "pair")
	writeKey(t, p.keysDir, "2026-01-01")
	userGRPC, userHTTP, authGRPC, authHTTP := listen(t), listen(t), listen(t), listen(t)
	p.userAddr = userGRPC.Addr().String()
	p.issuer = "http://localhost:" + port(authHTTP)
	data := t.TempDir()
	common := []string{"DRAIN_DELAY=0s", "READINESS_INTERVAL=100ms"}
	tracing := []telemetry.TracingOption{telemetry.WithExporter(p.spans)}
	authEnv, userEnv := extraEnv, []string(nil)
	if tlsOn != nil {
		// Names, not IPs, so the certificates' names are what is checked.
		p.userAddr = "localhost:" + port(userGRPC)
		p.issuer = "https://localhost:" + port(authHTTP)
		authEnv, userEnv = tlsOn.authEnv, append(slices.Clone(tlsOn.userEnv), extraEnv...)
	}

	p.jwksURL = p.issuer + "/.well-known/jwks.json"
	common = append(common, "JWT_ISSUER="+p.issuer)
	p.authDB = filepath.Join(data, "auth.db")
	authCfg, err := authapp.LoadConfig(append(append(common,
		"DATABASE_URL=sqlite://"+p.authDB,
		"JWT_SIGNING_KEYS_DIR="+p.keysDir,
		"USER_SERVICE_ADDR="+p.userAddr,
	), authEnv...))
	if err != nil {
		t.Fatal(err)
	}
	p.authApp, err = authapp.New(context.Background(), authCfg, authapp.Options{Tracing: tracing, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	userCfg, err := userapp.LoadConfig(append(append(common,
		"DATABASE_URL=sqlite://"+filepath.Join(data, "user.db"),
		// No JWKS_URL: the keys are found from JWT_ISSUER, through the
		// Auth service's discovery document.
		"JWKS_REFRESH_INTERVAL=1s",
		"BOOTSTRAP_ADMIN_EMAIL=admin@example.com",
		"BOOTSTRAP_ADMIN_PASSWORD=root keeps the keys",
		// Tests sign many users up from 127.0.0.1; the sign-up limit has
		// its own tests.
		"SIGNUP_RATE_PER_ADDR=0",
	), userEnv...))
	if err != nil {
		t.Fatal(err)
	}
	cheap := password.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	userApp, err := userapp.New(context.Background(), userCfg, userapp.Options{Tracing: tracing, PasswordParams: &cheap, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}

	p.userApp = userApp
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = p.authApp.Serve(ctx, server.Listeners{GRPC: authGRPC, HTTP: authHTTP}) }()
	go func() { defer wg.Done(); _ = userApp.Serve(ctx, server.Listeners{GRPC: userGRPC, HTTP: userHTTP}) }()

	userConn := p.dial(t, p.userAddr)
	authConn := p.dial(t, "localhost:"+port(authGRPC))
	p.users, p.auth = userv1.NewUserServiceClient(userConn), authv1.NewAuthServiceClient(authConn)
	p.authConn = authConn
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = userConn.Close()
		_ = authConn.Close()
	})
	// The User service is ready once it has fetched the JWKS.
	eventually(t, "user service ready", func() bool {
		r, err := p.users.HealthCheck(context.Background(), nil)
		return err == nil && r.GetStatus() == userv1.HealthCheckResponse_SERVING_STATUS_SERVING
	})
	return p
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	return dialWith(t, addr, insecure.NewCredentials())
}

func dialWith(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dial connects a client of the pair: over TLS, trusting the pair's CA
// and presenting no certificate, in a TLS pair.
func (p *pair) dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	if p.tls == nil {
		return dial(t, addr)
	}
	return dialWith(t, addr, p.tls.client(t, nil))
}

func port(l net.Listener) string { return fmt.Sprint(l.Addr().(*net.TCPAddr).Port) }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func bearer(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("code = %v (%v), want %v", got, err, want)
	}
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := parsed.Header["kid"].(string)
	return kid
}

// TestWalkthrough is the README's grpcurl walk-through, call for call.
func TestWalkthrough(t *testing.T) {
	p := startPair(t)
	ctx := context.Background()
	created, err := p.users.CreateUser(ctx, &userv1.CreateUserRequest{Email: "ada@example.com", Password: "correct horse battery", DisplayName: "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	login, err := p.auth.Login(ctx, &authv1.LoginRequest{Email: "ada@example.com", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	if login.GetTokenType() != "Bearer" || login.GetExpiresIn() != 900 || len(login.GetRefreshToken()) < 22 {
		t.Errorf("login response = %v", login)
	}
	claims := jwt.MapClaims{}
	parsed, _, err := jwt.NewParser().ParseUnverified(login.GetAccessToken(), claims)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Header["typ"] != "at+jwt" || parsed.Header["kid"] != "2026-01-01" || parsed.Header["alg"] != "EdDSA" {
		t.Errorf("access token header = %v", parsed.Header)
	}
	for _, c := range []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "roles", "client_id"} {
		if _, ok := claims[c]; !ok {
			t.Errorf("access token lacks claim %q: %v", c, claims)
		}
	}
	if claims["sub"] != created.GetUser().GetId() || claims["iss"] != p.issuer || claims["client_id"] != "gatehouse" {
		t.Errorf("claims = %v", claims)
	}

	got, err := p.users.GetUser(bearer(login.GetAccessToken()), &userv1.GetUserRequest{Id: created.GetUser().GetId()})
	if err != nil || got.GetUser().GetEmail() != "ada@example.com" {
		t.Fatalf("GetUser with access token: %v, %v", got, err)
	}
	valid, err := p.auth.ValidateToken(ctx, &authv1.ValidateTokenRequest{AccessToken: login.GetAccessToken()})
	if err != nil || valid.GetSubject() != created.GetUser().GetId() || !valid.GetExpireTime().AsTime().After(time.Now()) {
		t.Fatalf("ValidateToken: %v, %v", valid, err)
	}

	refreshed, err := p.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: login.GetRefreshToken()})
	if err != nil {
		t.Fatal(err)
	}
	if refreshed.GetRefreshToken() == login.GetRefreshToken() {
		t.Fatal("refresh did not rotate the refresh token")
	}
	if _, err := p.users.GetUser(bearer(refreshed.GetAccessToken()), &userv1.GetUserRequest{Id: created.GetUser().GetId()}); err != nil {
		t.Fatalf("GetUser with refreshed token: %v", err)
	}
	// Reuse of the rotated token is refused and revokes the family,
	// including the newest token.
	_, err = p.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: login.GetRefreshToken()})
	wantCode(t, err, codes.Unauthenticated)
	_, err = p.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: refreshed.GetRefreshToken()})
	wantCode(t, err, codes.Unauthenticated)

	// Log in again and log out: the refresh token stops working; logout is
	// idempotent.
	again, err := p.auth.Login(ctx, &authv1.LoginRequest{Email: "ADA@example.com", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := p.auth.RevokeToken(ctx, &authv1.RevokeTokenRequest{RefreshToken: again.GetRefreshToken()}); err != nil {
			t.Fatalf("RevokeToken: %v", err)
		}
	}
	_, err = p.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: again.GetRefreshToken()})
	wantCode(t, err, codes.Unauthenticated)

	// Tokens of the wrong kind never validate.
	for name, tok := range map[string]string{"refresh token as access token": again.GetRefreshToken(), "garbage": "not.a.jwt"} {
		_, err := p.auth.ValidateToken(ctx, &authv1.ValidateTokenRequest{AccessToken: tok})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: ValidateToken code = %v", name, status.Code(err))
		}
		_, err = p.users.GetUser(bearer(tok), &userv1.GetUserRequest{Id: created.GetUser().GetId()})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: GetUser code = %v", name, status.Code(err))
		}
	}
	// An access token is not a refresh token.
	_, err = p.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: login.GetAccessToken()})
	if status.Code(err) != codes.Unauthenticated && status.Code(err) != codes.InvalidArgument {
		t.Errorf("access token as refresh token: %v", err)
	}

	// The domain counters saw exactly this.
	reg := p.authApp.Metrics.Registry
	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"gatehouse_logins_total", "result", "success", 2},
		{"gatehouse_refreshes_total", "result", "success", 1},
		{"gatehouse_refreshes_total", "result", "reused", 1},
		{"gatehouse_refreshes_total", "result", "revoked", 2},
		{"gatehouse_refresh_token_reuse_total", "", "", 1},
		{"gatehouse_tokens_issued_total", "type", "access", 3},
	} {
		if got := metricValue(t, reg, c.name, c.label, c.value); got != c.want {
			t.Errorf("%s{%s=%q} = %v, want %v", c.name, c.label, c.value, got, c.want)
		}
	}

	// Debug logs of both services hold no token, password or key.
	logs := p.logs.String()
	if !strings.Contains(logs, `"msg":"login"`) {
		t.Fatalf("no login log line captured; logs:\n%s", logs)
	}
	keyPEM, err := os.ReadFile(filepath.Join(p.keysDir, "2026-01-01.pem"))
	if err != nil {
		t.Fatal(err)
	}
	keyBody := strings.Split(string(keyPEM), "\n")[1]
	for name, secret := range map[string]string{
		"access token":        login.GetAccessToken(),
		"token payload":       strings.Split(login.GetAccessToken(), ".")[1],
		"refresh token":       login.GetRefreshToken(),
		"new refresh":         refreshed.GetRefreshToken(),
		"password":            "correct horse battery",
		"private key":         keyBody,
		"root keeps the keys": "root keeps the keys",
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain the %s", name)
		}
	}
}

func metricValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if label == "" || (l.GetName() == label && l.GetValue() == value) {
					return m.GetCounter().GetValue()
				}
			}
			if label == "" {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}

// TestAuthServiceInterceptorInstalled walks every method the Auth service
// registers. All but RevokeAllSessions are anonymous by design (their
// credentials travel in the request): each must answer a malformed bearer
// token as it answers none. RevokeAllSessions, and any method added later
// without a declaration, must refuse a call without a valid token.
func TestAuthServiceInterceptorInstalled(t *testing.T) {
	p := startPair(t)
	authntest.CheckAllMethodsProtected(t, p.authConn, p.authApp.Server.GRPC.GetServiceInfo(), authntest.Allowlist{
		Anonymous: []string{
			authv1.AuthService_Login_FullMethodName, authv1.AuthService_RefreshToken_FullMethodName,
			authv1.AuthService_ValidateToken_FullMethodName, authv1.AuthService_RevokeToken_FullMethodName,
			authv1.AuthService_HealthCheck_FullMethodName,
			"/grpc.health.v1.Health/", "/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/",
		},
	})
}

// TestReadinessAndKeysExported: the gauges the alerts GatehouseNotReady,
// GatehouseKeysUnavailable and GatehouseJWKSFetchFailing read are on both
// services' /metrics, with the values of a healthy pair.
func TestReadinessAndKeysExported(t *testing.T) {
	p := startPair(t)
	gauge := func(reg *prometheus.Registry, name, check string) (float64, bool) {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				if f.GetName() == name && (check == "" || slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetValue() == check })) {
					return m.GetGauge().GetValue(), true
				}
			}
		}
		return 0, false
	}
	for _, tt := range []struct {
		svc, name, check string
		reg              *prometheus.Registry
	}{
		{"user", "gatehouse_ready", "", p.userApp.Metrics.Registry},
		{"user", "gatehouse_readiness_check_ok", "database", p.userApp.Metrics.Registry},
		{"user", "gatehouse_readiness_check_ok", "keys", p.userApp.Metrics.Registry},
		{"user", "gatehouse_jwks_fetch_ok", "", p.userApp.Metrics.Registry},
		{"auth", "gatehouse_ready", "", p.authApp.Metrics.Registry},
		{"auth", "gatehouse_readiness_check_ok", "keys", p.authApp.Metrics.Registry},
	} {
		if v, ok := gauge(tt.reg, tt.name, tt.check); !ok || v != 1 {
			t.Errorf("%s: %s{check=%q} = %v (present: %v), want 1", tt.svc, tt.name, tt.check, v, ok)
		}
	}
}

func TestLoginFailures(t *testing.T) {
	p := startPair(t)
	ctx := context.Background()
	if _, err := p.users.CreateUser(ctx, &userv1.CreateUserRequest{Email: "bo@example.com", Password: "right passphrase"}); err != nil {
		t.Fatal(err)
	}
	_, wrongPw := p.auth.Login(ctx, &authv1.LoginRequest{Email: "bo@example.com", Password: "wrong password"})
	_, unknown := p.auth.Login(ctx, &authv1.LoginRequest{Email: "nobody@example.com", Password: "wrong password"})
	wantCode(t, wrongPw, codes.Unauthenticated)
	wantCode(t, unknown, codes.Unauthenticated)
	if status.Convert(wrongPw).Message() != status.Convert(unknown).Message() {
		t.Errorf("wrong password and unknown email differ: %q vs %q", status.Convert(wrongPw).Message(), status.Convert(unknown).Message())
	}
	_, err := p.auth.Login(ctx, &authv1.LoginRequest{Email: "", Password: "x"})
	wantCode(t, err, codes.InvalidArgument)
}

// fromAddr is a client of the Auth service that connects from another
// loopback address, so the service sees another client.
func (p *pair) authFrom(t *testing.T, ip string) authv1.AuthServiceClient {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := grpc.NewClient(p.authConn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return dialer.DialContext(ctx, "tcp", addr) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return authv1.NewAuthServiceClient(c)
}

// TestLoginLimitsCannotLockTheOwnerOut replays the lock-out: wrong guesses
// from one address stop that address, with a retry delay, and never the
// owner logging in from another address; successful logins count nothing.
func TestLoginLimitsCannotLockTheOwnerOut(t *testing.T) {
	p := startPair(t, "LOGIN_RATE_PER_ACCOUNT_ADDR=3")
	ctx := context.Background()
	if _, err := p.users.CreateUser(ctx, &userv1.CreateUserRequest{Email: "bo@example.com", Password: "right passphrase"}); err != nil {
		t.Fatal(err)
	}
	attacker, owner := p.authFrom(t, "127.0.0.2"), p.authFrom(t, "127.0.0.3")
	for i := range 3 {
		_, err := attacker.Login(ctx, &authv1.LoginRequest{Email: "bo@example.com", Password: fmt.Sprintf("guess %d", i)})
		wantCode(t, err, codes.Unauthenticated)
	}
	_, err := attacker.Login(ctx, &authv1.LoginRequest{Email: "BO@example.com", Password: "right passphrase"})
	wantCode(t, err, codes.ResourceExhausted)
	// A token comes back every 20 s (3 a minute), less the time the
	// guesses took.
	if d, ok := rpcerr.RetryDelay(err); !ok || d < 10*time.Second || d > 20*time.Second {
		t.Errorf("RetryInfo = %v, %v; want at most 20s (3 a minute)", d, ok)
	}
	for range 10 {
		if _, err := owner.Login(ctx, &authv1.LoginRequest{Email: "bo@example.com", Password: "right passphrase"}); err != nil {
			t.Fatalf("the owner, from its own address, during the attack: %v", err)
		}
	}
	if got := metricValue(t, p.authApp.Metrics.Registry, "gatehouse_logins_total", "result", "rate_limited"); got != 1 {
		t.Errorf("logins_total{result=rate_limited} = %v, want 1", got)
	}
}

// TestLoginCancelledByTheCallerIsNotAnOutage: a client whose deadline
// passes while the User service is slow gets DeadlineExceeded, and the
// login counts as "canceled", not "unavailable", which pages.
func TestLoginCancelledByTheCallerIsNotAnOutage(t *testing.T) {
	proxy := faultproxy.New(t, "")
	p := startPair(t, "USER_SERVICE_ADDR="+proxy.Addr())
	proxy.SetTarget(p.userAddr)
	proxy.SetStalled(true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := p.auth.Login(ctx, &authv1.LoginRequest{Email: "bo@example.com", Password: "right passphrase"})
	wantCode(t, err, codes.DeadlineExceeded)
	eventually(t, "the login counted as canceled", func() bool {
		return metricValue(t, p.authApp.Metrics.Registry, "gatehouse_logins_total", "result", "canceled") == 1
	})
	if got := metricValue(t, p.authApp.Metrics.Registry, "gatehouse_logins_total", "result", "unavailable"); got != 0 {
		t.Errorf("logins_total{result=unavailable} = %v, want 0", got)
	}
}

// startAuth starts an Auth service of its own, signing with a fresh key
// under kid and calling the User service at userAddr, and returns a client
// of it. The service stops when the test ends.
func startAuth(t *testing.T, kid, userAddr string, opts authapp.Options) authv1.AuthServiceClient {
	t.Helper()
	keys := t.TempDir()
	writeKey(t, keys, kid)
	return startAuthWith(t, opts, "DATABASE_URL=sqlite://"+filepath.Join(t.TempDir(), "auth.db"),
		"JWT_SIGNING_KEYS_DIR="+keys, "USER_SERVICE_ADDR="+userAddr)
}

// startAuthWith starts an Auth service of its own configured by env.
func startAuthWith(t *testing.T, opts authapp.Options, env ...string) authv1.AuthServiceClient {
	t.Helper()
	cfg, err := authapp.LoadConfig(append([]string{"DRAIN_DELAY=0s"}, env...))
	if err != nil {
		t.Fatal(err)
	}
	a, err := authapp.New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	gl, hl := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, server.Listeners{GRPC: gl, HTTP: hl}) }()
	conn := dial(t, gl.Addr().String())
	t.Cleanup(func() { _ = conn.Close(); cancel(); <-done })
	return authv1.NewAuthServiceClient(conn)
}

func TestLoginWithUserServiceDown(t *testing.T) {
	dead := listen(t)
	addr := dead.Addr().String()
	_ = dead.Close()
	auth := startAuth(t, "k1", addr, authapp.Options{})
	_, err := auth.Login(context.Background(), &authv1.LoginRequest{Email: "a@example.com", Password: "velvet anchor 42"})
	wantCode(t, err, codes.Unavailable)
}

// TestLoginWhenUserServiceRefusesAuthsToken: the User service verifies
// with another key under the same kid as the Auth service signs with (a
// key replaced while a verifier's JWKS cache still holds the old one). The
// user's credentials are never checked, so Login must answer Unavailable
// and say why in the Auth log, not "invalid email or password".
func TestLoginWhenUserServiceRefusesAuthsToken(t *testing.T) {
	other := startPair(t) // its User service trusts its own Auth's key "2026-01-01"
	logs := &syncBuffer{}
	// Same kid, another key.
	auth := startAuth(t, "2026-01-01", other.userAddr, authapp.Options{Logger: telemetry.NewLogger(logs, slog.LevelDebug, "auth")})

	// The bootstrap admin exists, and the password is right.
	_, err := auth.Login(context.Background(), &authv1.LoginRequest{Email: "admin@example.com", Password: "root keeps the keys"})
	wantCode(t, err, codes.Unavailable)
	if !strings.Contains(logs.String(), "refused the Auth service's token (TOKEN_INVALID)") {
		t.Errorf("the Auth log does not say the User service refused its token:\n%s", logs.String())
	}
	// The same credentials through the Auth service whose key it trusts.
	if _, err := other.auth.Login(context.Background(), &authv1.LoginRequest{Email: "admin@example.com", Password: "root keeps the keys"}); err != nil {
		t.Fatalf("login through the matching Auth service: %v", err)
	}
}

// TestLoginTraceSpansBothServices: one Login is one trace holding the Auth
// server span, the Auth→User client span and the User server span.
func TestLoginTraceSpansBothServices(t *testing.T) {
	p := startPair(t)
	ctx := context.Background()
	if _, err := p.users.CreateUser(ctx, &userv1.CreateUserRequest{Email: "tr@example.com", Password: "velvet anchor 42"}); err != nil {
		t.Fatal(err)
	}
	p.spans.Reset()
	if _, err := p.auth.Login(ctx, &authv1.LoginRequest{Email: "tr@example.com", Password: "velvet anchor 42"}); err != nil {
		t.Fatal(err)
	}
	// A server span ends (and is exported) just after its response is
	// sent, so the client may be a moment ahead of the exporter: poll until
	// the three spans of the Login trace are there.
	type kindName struct {
		kind trace.SpanKind
		name string
	}
	want := []kindName{
		{trace.SpanKindServer, "auth.v1.AuthService/Login"},
		{trace.SpanKindClient, "user.v1.UserService/VerifyPassword"},
		{trace.SpanKindServer, "user.v1.UserService/VerifyPassword"},
	}
	var missing []kindName
	var spans tracetest.SpanStubs
	deadline := time.Now().Add(5 * time.Second)
	for {
		spans = p.spans.GetSpans()
		var traceID trace.TraceID
		for _, s := range spans {
			if s.Name == want[0].name && s.SpanKind == want[0].kind {
				traceID = s.SpanContext.TraceID()
			}
		}
		missing = missing[:0]
		for _, w := range want {
			found := false
			for _, s := range spans {
				if traceID.IsValid() && s.SpanContext.TraceID() == traceID && s.Name == w.name && s.SpanKind == w.kind {
					found = true
				}
			}
			if !found {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(missing) > 0 {
		var have []string
		for _, s := range spans {
			have = append(have, fmt.Sprintf("%s(%s, trace %s)", s.Name, s.SpanKind, s.SpanContext.TraceID()))
		}
		t.Fatalf("the Login trace lacks %v; spans: %v", missing, have)
	}
	for _, s := range spans {
		if strings.HasPrefix(s.Name, "grpc.health") {
			t.Errorf("health call traced: %s", s.Name)
		}
	}
}

// TestKeyRotationWithoutRestart follows the README's rotation steps on a
// running pair: add a key, make it active, old tokens keep working, new
// tokens carry the new kid and the User service accepts them; remove the
// old key and old tokens are refused by both services.
func TestKeyRotationWithoutRestart(t *testing.T) {
	p := startPair(t)
	ctx := context.Background()
	admin := func() *authv1.LoginResponse {
		t.Helper()
		r, err := p.auth.Login(ctx, &authv1.LoginRequest{Email: "admin@example.com", Password: "root keeps the keys"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	old := admin()
	if kidOf(t, old.GetAccessToken()) != "2026-01-01" {
		t.Fatalf("old token kid = %s", kidOf(t, old.GetAccessToken()))
	}
	list := func(tok string) error {
		_, err := p.users.ListUsers(bearer(tok), &userv1.ListUsersRequest{})
		return err
	}

	// 1. Add the new key: published in the JWKS, not yet signing.
	writeKey(t, p.keysDir, "2026-06-01")
	eventually(t, "new key in JWKS", func() bool { return strings.Contains(fetch(t, p.jwksURL), `"2026-06-01"`) })
	// 2. Activate it through the key directory, no restart.
	if err := os.WriteFile(filepath.Join(p.keysDir, "active-kid"), []byte("2026-06-01\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := admin()
	if kid := kidOf(t, fresh.GetAccessToken()); kid != "2026-06-01" {
		t.Fatalf("new token kid = %s, want 2026-06-01", kid)
	}
	if err := list(fresh.GetAccessToken()); err != nil {
		t.Fatalf("User service refuses a token of the new key: %v", err)
	}
	if err := list(old.GetAccessToken()); err != nil {
		t.Fatalf("old token stopped working before its key was removed: %v", err)
	}
	// 3. Remove the old key: both services refuse its tokens.
	if err := os.Remove(filepath.Join(p.keysDir, "2026-01-01.pem")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "old key gone from the JWKS", func() bool { return !strings.Contains(fetch(t, p.jwksURL), `"2026-01-01"`) })
	_, err := p.auth.ValidateToken(ctx, &authv1.ValidateTokenRequest{AccessToken: old.GetAccessToken()})
	wantCode(t, err, codes.Unauthenticated)
	eventually(t, "User service refusing the removed key", func() bool { return status.Code(list(old.GetAccessToken())) == codes.Unauthenticated })
	if err := list(fresh.GetAccessToken()); err != nil {
		t.Fatalf("new token refused after rotation: %v", err)
	}
	// Service tokens follow the rotation too: login still works.
	admin()
}

func TestJWKSEndpoint(t *testing.T) {
	p := startPair(t)
	resp, err := http.Get(p.jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("keys = %v", set.Keys)
	}
	k := set.Keys[0]
	if k["kid"] != "2026-01-01" || k["alg"] != "EdDSA" || k["use"] != "sig" || k["kty"] != "OKP" {
		t.Errorf("jwk = %v", k)
	}
	if _, ok := k["d"]; ok {
		t.Fatal("JWKS publishes private key material")
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") || resp.Header.Get("ETag") == "" {
		t.Errorf("cache headers: Cache-Control %q, ETag %q", cc, resp.Header.Get("ETag"))
	}
	req, _ := http.NewRequest(http.MethodGet, p.jwksURL, nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	again, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = again.Body.Close()
	if again.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET = %d, want 304", again.StatusCode)
	}
}

func fetch(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestRejectionFloodLogsLittle: garbage refresh tokens as fast as eight
// clients can send them, for two seconds. Every call is refused and
// counted, but the log grows by at most about 100 lines a second (the call
// log and the Auth service's own lines, each sampled at 50 a second after
// a burst), where before every refusal wrote a line. The lines say how
// many they stand for, and never carry the token.
func TestRejectionFloodLogsLittle(t *testing.T) {
	p := startPair(t)
	before := strings.Count(p.logs.String(), "\n")
	var sent atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(start) < 2*time.Second; i++ {
				_, err := p.auth.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{RefreshToken: fmt.Sprintf("garbage-%d-%d", w, i)})
				if status.Code(err) != codes.Unauthenticated {
					t.Errorf("garbage refresh: %v", err)
					return
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	logs := p.logs.String()
	lines := strings.Count(logs, "\n") - before
	limit := 2*200 + int(100*elapsed)
	t.Logf("%d garbage refreshes in %.1fs wrote %d log lines (limit %d)", sent.Load(), elapsed, lines, limit)
	if lines > limit {
		t.Errorf("%d log lines for %d refused refreshes, want at most %d", lines, sent.Load(), limit)
	}
	if !strings.Contains(logs, `"suppressed":`) || !strings.Contains(logs, `"result":"unknown"`) {
		t.Error("the sampled lines do not say what they stand for")
	}
	if strings.Contains(logs, "garbage-") {
		t.Error("a refresh token reached the log")
	}
	if got := metricValue(t, p.authApp.Metrics.Registry, "gatehouse_refreshes_total", "result", "unknown"); got != float64(sent.Load()) {
		t.Errorf("refreshes_total{result=unknown} = %v, want every one of the %d calls", got, sent.Load())
	}
}
