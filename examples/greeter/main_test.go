package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	greeterv1 "github.com/gatehouse-dev/gatehouse/examples/greeter/api/greeter/v1"
	"github.com/gatehouse-dev/gatehouse/hack/localproc"
	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
)

// gatehouse runs the real User and Auth binaries, built from this
// checkout, on loopback ports, and returns the Auth service's issuer URL
// and gRPC clients of both.
func gatehouse(t *testing.T) (issuer string, users userv1.UserServiceClient, auth authv1.AuthServiceClient) {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir, "./services/user", "./services/auth")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building Gatehouse: %v\n%s", err, out)
	}
	if err := os.Mkdir(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := localproc.WriteKey(filepath.Join(dir, "keys"), "2026-01-01"); err != nil {
		t.Fatal(err)
	}
	ports, err := localproc.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	issuer = "http://" + addr(3)
	common := []string{"PATH=" + os.Getenv("PATH"), "JWT_ISSUER=" + issuer, "DRAIN_DELAY=0s", "LOG_LEVEL=warn"}
	user, err := localproc.Start(filepath.Join(dir, "user"), nil, append(common, "GRPC_ADDR="+addr(0), "HTTP_ADDR="+addr(1),
		"DATABASE_URL=sqlite://"+filepath.Join(dir, "user.db"), "ALLOW_SIGNUP=true"), "", filepath.Join(dir, "user.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(user.Stop)
	authProc, err := localproc.Start(filepath.Join(dir, "auth"), nil, append(common, "GRPC_ADDR="+addr(2), "HTTP_ADDR="+addr(3),
		"DATABASE_URL=sqlite://"+filepath.Join(dir, "auth.db"), "JWT_SIGNING_KEYS_DIR="+filepath.Join(dir, "keys"),
		"USER_SERVICE_ADDR="+addr(0)), "", filepath.Join(dir, "auth.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(authProc.Stop)
	for i, p := range map[int]*localproc.Proc{0: user, 2: authProc} {
		if _, err := localproc.WaitServing(addr(i), p); err != nil {
			log, _ := os.ReadFile(p.LogPath)
			t.Fatalf("%s: %v\n%s", addr(i), err, log)
		}
	}
	return issuer, userv1.NewUserServiceClient(dial(t, addr(0))), authv1.NewAuthServiceClient(dial(t, addr(2)))
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// startGreeter runs the example's server in-process against issuer, and
// waits until it has the issuer's keys.
func startGreeter(t *testing.T, issuer string) (*grpc.ClientConn, *grpc.Server) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := newServer(ctx, func(k string) string { return map[string]string{"GATEHOUSE_ISSUER": issuer}[k] })
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn := dial(t, lis.Addr().String())
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return conn, srv
		}
		if time.Now().After(deadline) {
			t.Fatalf("greeter never became SERVING (it fetches the issuer's keys first): %v %v", r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGreeterTrustsGatehouseTokens: a token from Gatehouse's Login is
// accepted, the claims reach the handler; a tampered one, one of another
// issuer, and none are refused with the reason; health and reflection
// answer whatever token is sent.
func TestGreeterTrustsGatehouseTokens(t *testing.T) {
	issuer, users, auth := gatehouse(t)
	conn, _ := startGreeter(t, issuer)
	greeter := greeterv1.NewGreeterServiceClient(conn)
	ctx := context.Background()
	created, err := users.CreateUser(ctx, &userv1.CreateUserRequest{Email: "ada@example.com", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	login, err := auth.Login(ctx, &authv1.LoginRequest{Email: "ada@example.com", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	hello, err := greeter.Hello(bearer(login.GetAccessToken()), &greeterv1.HelloRequest{})
	if err != nil || hello.GetSubject() != created.GetUser().GetId() || hello.GetClientId() != "gatehouse" {
		t.Fatalf("Hello with a Login token: %v, %v", hello, err)
	}

	other := authntest.NewSigner(t) // another issuer, another key
	for name, tt := range map[string]struct {
		ctx    context.Context
		reason string
	}{
		"tampered signature": {bearer(authntest.TamperSignature(login.GetAccessToken())), authn.ReasonTokenInvalid},
		"another issuer":     {bearer(other.Token(t, created.GetUser().GetId())), authn.ReasonTokenInvalid},
		"no token":           {ctx, authn.ReasonTokenMissing},
	} {
		_, err := greeter.Hello(tt.ctx, &greeterv1.HelloRequest{})
		if status.Code(err) != codes.Unauthenticated || authn.RejectionReason(err) != tt.reason {
			t.Errorf("%s: %v (reason %q), want Unauthenticated %s", name, err, authn.RejectionReason(err), tt.reason)
		}
	}
}

// TestGreeterProtectsEveryMethod walks what the example registers with the
// public package's walker: a stranger's service gets the same check as
// Gatehouse's own.
func TestGreeterProtectsEveryMethod(t *testing.T) {
	issuer, _, _ := gatehouse(t)
	conn, srv := startGreeter(t, issuer)
	authntest.CheckAllMethodsProtected(t, conn, srv.GetServiceInfo(), authntest.Allowlist{Anonymous: authn.PublicInfrastructureServices()})
}
