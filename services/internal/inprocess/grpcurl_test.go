package inprocess

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/auth"
	"github.com/gatehouse-dev/gatehouse/services/internal/identity"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/rpcerr"
)

var (
	grpcurlOnce sync.Once
	grpcurlPath string
	grpcurlErr  error
)

// grpcurlBinary is the real grpcurl: $GRPCURL (make sets it to the pinned
// ./bin/grpcurl), else ./bin/grpcurl, else built from hack/tools.
func grpcurlBinary(t *testing.T) string {
	t.Helper()
	grpcurlOnce.Do(func() {
		root, err := filepath.Abs(filepath.Join("..", "..", ".."))
		if err != nil {
			grpcurlErr = err
			return
		}
		for _, p := range []string{os.Getenv("GRPCURL"), filepath.Join(root, "bin", "grpcurl")} {
			if p != "" {
				if _, err := os.Stat(p); err == nil {
					grpcurlPath = p
					return
				}
			}
		}
		dir, err := os.MkdirTemp("", "gatehouse-grpcurl-")
		if err != nil {
			grpcurlErr = err
			return
		}
		grpcurlPath = filepath.Join(dir, "grpcurl")
		cmd := exec.Command("go", "build", "-o", grpcurlPath, "github.com/fullstorydev/grpcurl/cmd/grpcurl")
		cmd.Dir = filepath.Join(root, "hack", "tools")
		if out, err := cmd.CombinedOutput(); err != nil {
			grpcurlErr = err
			grpcurlPath = string(out)
		}
	})
	if grpcurlErr != nil {
		t.Fatalf("building grpcurl: %v\n%s", grpcurlErr, grpcurlPath)
	}
	return grpcurlPath
}

// expiredToken is an access token of acct signed by the pair's own key,
// which expired an hour ago.
func (p *pair) expiredToken(t *testing.T, acct auth.Account) string {
	t.Helper()
	ks, err := auth.OpenSigningKeyDir(context.Background(), p.keysDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ks.Close() }()
	iss, err := auth.NewKeyIssuer(ks, p.keysDir, "", p.issuer)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iss.Issue(acct, "gatehouse", "gatehouse", -time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

// TestGrpcurlWithAnExpiredToken is the everyday case: a shell keeps
// `-H "authorization: Bearer $TOKEN"` after the token expired. Reflection
// and health ignore it, so grpcurl can still list and describe (with the
// contract's comments); Login ignores it, so the user can log in again;
// and a method that needs a token says why it refused: TOKEN_EXPIRED.
func TestGrpcurlWithAnExpiredToken(t *testing.T) {
	bin := grpcurlBinary(t)
	p := startPair(t, "GRPC_REFLECTION=true")
	ctx := context.Background()
	created, err := p.users.CreateUser(ctx, &userv1.CreateUserRequest{Email: "gus@example.com", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	expired := p.expiredToken(t, auth.Account{ID: created.GetUser().GetId()})
	authAddr := strings.TrimPrefix(p.authConn.Target(), "passthrough:///")
	// grpcurl runs the real grpcurl with the stale header, as a shell would.
	grpcurl := func(args ...string) (string, error) {
		args = append([]string{"-plaintext", "-max-time", "10", "-H", "authorization: Bearer " + expired}, args...)
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}
	call := func(addr, method, body string) (string, error) { return grpcurl("-d", body, addr, method) }

	for _, addr := range []string{p.userAddr, authAddr} {
		if out, err := grpcurl(addr, "list"); err != nil || !strings.Contains(out, "grpc.health.v1.Health") {
			t.Errorf("grpcurl list %s with an expired token: %v\n%s", addr, err, out)
		}
		if out, err := call(addr, "grpc.health.v1.Health/Check", "{}"); err != nil || !strings.Contains(out, "SERVING") {
			t.Errorf("Health/Check %s with an expired token: %v\n%s", addr, err, out)
		}
	}
	out, err := grpcurl(p.userAddr, "describe", "user.v1.UserService.GetUser")
	if err != nil || !strings.Contains(out, "GetUser") || !strings.Contains(out, "Errors:") {
		t.Errorf("describe GetUser: %v, want its comment\n%s", err, out)
	}

	out, err = call(p.userAddr, "user.v1.UserService/GetUser", `{"id": "`+created.GetUser().GetId()+`"}`)
	if err == nil || !strings.Contains(out, "Code: Unauthenticated") || !strings.Contains(out, `"reason": "TOKEN_EXPIRED"`) {
		t.Errorf("GetUser with an expired token: %v, want Unauthenticated with reason TOKEN_EXPIRED\n%s", err, out)
	}
	out, err = call(authAddr, "auth.v1.AuthService/Login", `{"email": "gus@example.com", "password": "correct horse battery"}`)
	if err != nil || !strings.Contains(out, "accessToken") {
		t.Errorf("Login with an expired token in the header: %v\n%s", err, out)
	}
	out, err = call(authAddr, "auth.v1.AuthService/ValidateToken", `{"access_token": "`+expired+`"}`)
	if err == nil || !strings.Contains(out, `"reason": "TOKEN_EXPIRED"`) {
		t.Errorf("ValidateToken of an expired token: %v, want reason TOKEN_EXPIRED\n%s", err, out)
	}
}

// TestEveryUnauthenticatedHasAReason: each way a call can be refused as
// Unauthenticated, on domain methods and on ValidateToken alike, carries a
// google.rpc.ErrorInfo reason that tells the client what to do.
func TestEveryUnauthenticatedHasAReason(t *testing.T) {
	p := startPair(t)
	ctx := context.Background()
	created, err := p.users.CreateUser(ctx, &userv1.CreateUserRequest{Email: "ria@example.com", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetUser().GetId()
	expired := p.expiredToken(t, auth.Account{ID: id})
	// Reasons about the caller's own bearer token are the interceptor's
	// (authn.ErrorDomain); reasons about the credentials in the request
	// are the service's (identity.ErrorDomain). An Auth service of any
	// version reads an authn reason from the User service as "my service
	// token was refused", so a wrong password must never carry one.
	const callerToken, request = authn.ErrorDomain, identity.ErrorDomain
	tests := []struct {
		name   string
		call   func() error
		domain string
		reason string
	}{
		{"GetUser without a token", func() error {
			_, err := p.users.GetUser(ctx, &userv1.GetUserRequest{Id: id})
			return err
		}, callerToken, "TOKEN_MISSING"},
		{"GetUser with garbage", func() error {
			_, err := p.users.GetUser(bearer("garbage"), &userv1.GetUserRequest{Id: id})
			return err
		}, callerToken, "TOKEN_INVALID"},
		{"GetUser with an expired token", func() error {
			_, err := p.users.GetUser(bearer(expired), &userv1.GetUserRequest{Id: id})
			return err
		}, callerToken, "TOKEN_EXPIRED"},
		{"ValidateToken of garbage", func() error {
			_, err := p.auth.ValidateToken(ctx, &authv1.ValidateTokenRequest{AccessToken: "garbage"})
			return err
		}, request, "TOKEN_INVALID"},
		{"ValidateToken of an expired token", func() error {
			_, err := p.auth.ValidateToken(ctx, &authv1.ValidateTokenRequest{AccessToken: expired})
			return err
		}, request, "TOKEN_EXPIRED"},
		{"Login with a wrong password", func() error {
			_, err := p.auth.Login(ctx, &authv1.LoginRequest{Email: "ria@example.com", Password: "wrong horse battery"})
			return err
		}, request, "CREDENTIALS_INVALID"},
		{"RefreshToken of an unknown token", func() error {
			_, err := p.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: "not-a-refresh-token"})
			return err
		}, request, "REFRESH_TOKEN_INVALID"},
		{"RevokeAllSessions with an expired token", func() error {
			_, err := p.auth.RevokeAllSessions(bearer(expired), &authv1.RevokeAllSessionsRequest{UserId: id})
			return err
		}, callerToken, "TOKEN_EXPIRED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			wantCode(t, err, codes.Unauthenticated)
			if domain, reason := rpcerr.Reason(err); domain != tt.domain || reason != tt.reason {
				t.Errorf("ErrorInfo %s/%s, want %s/%s (%v)", domain, reason, tt.domain, tt.reason, err)
			}
		})
	}
}
