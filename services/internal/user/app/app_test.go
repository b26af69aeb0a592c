package app

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
	"github.com/gatehouse-dev/gatehouse/services/internal/identity"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authz/authztest"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/rpcerr"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/server"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/telemetry"
	"github.com/gatehouse-dev/gatehouse/services/internal/user"
	"github.com/gatehouse-dev/gatehouse/services/internal/user/password"
	"github.com/gatehouse-dev/gatehouse/services/internal/user/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// cheap keeps argon2id fast in tests; one test below uses the real cost.
var cheap = password.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

type env struct {
	t      *testing.T
	app    *App
	conn   *grpc.ClientConn
	client userv1.UserServiceClient
	signer *authntest.Signer
	cancel context.CancelFunc
	done   chan error
	rootID string     // the admin of admin(), once created
	logs   *logBuffer // the service's log, at debug level
}

// logBuffer collects the service's log lines from its goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startApp runs a real User service on loopback TCP with a real SQLite
// file and a directory key source holding the test signer's public key.
func startApp(t *testing.T, environ ...string) *env {
	t.Helper()
	params := cheap
	return startAppWith(t, &params, environ...)
}

// startAppWith uses the given argon2id cost; nil means production cost.
func startAppWith(t *testing.T, params *password.Params, environ ...string) *env {
	t.Helper()
	e := &env{t: t, signer: authntest.NewSigner(t), done: make(chan error, 1), logs: &logBuffer{}}
	e.signer.Issuer, e.signer.Audience = "http://localhost:8082", "gatehouse"
	keysDir := t.TempDir()
	der, err := x509.MarshalPKIXPublicKey(e.signer.Key().Public)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keysDir, "test-ed25519.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{
		"DATABASE_URL=sqlite://" + filepath.Join(t.TempDir(), "user.db"),
		"JWT_PUBLIC_KEYS_DIR=" + keysDir,
		"DRAIN_DELAY=0s",
		"READINESS_INTERVAL=100ms",
		// Tests sign many users up from 127.0.0.1; TestSignupLimit turns
		// the limit back on.
		"SIGNUP_RATE_PER_ADDR=0",
	}
	cfg, err := LoadConfig(append(base, environ...))
	if err != nil {
		t.Fatal(err)
	}
	e.app, err = New(context.Background(), cfg, Options{PasswordParams: params, Logger: telemetry.NewLogger(e.logs, slog.LevelDebug, "user")})
	if err != nil {
		t.Fatal(err)
	}
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- e.app.Serve(ctx, server.Listeners{GRPC: gl, HTTP: hl}) }()
	e.conn, err = grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	e.client = userv1.NewUserServiceClient(e.conn)
	t.Cleanup(func() {
		cancel()
		if err := <-e.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		_ = e.conn.Close()
	})
	return e
}

// as is a bearer token for subject with roles, at session version 0 (what
// a user who never changed credentials has). The User service judges the
// caller by its account, so subject must be a user that exists.
func (e *env) as(subject string, roles ...string) context.Context {
	return authntest.BearerContext(context.Background(), e.signer.Token(e.t, subject, authntest.Roles(roles...)))
}

// admin is a token of a real admin account, root@example.com, written
// straight into the database on first use.
func (e *env) admin() context.Context {
	e.t.Helper()
	if e.rootID == "" {
		e.rootID = e.insert("root@example.com", user.RoleAdmin).ID
	}
	return e.as(e.rootID, "admin")
}

// service is a token of the Auth service's own identity.
func (e *env) service() context.Context {
	return e.as(identity.ServiceSubject, identity.RoleService)
}

// insert writes a user with roles straight into the database, bypassing
// the API (and its rules on roles).
func (e *env) insert(email string, roles ...string) user.User {
	e.t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	u := user.User{ID: uuid.Must(uuid.NewV7()).String(), Email: email, DisplayName: "Inserted", Roles: roles,
		PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
		CreateTime:   now, UpdateTime: now, Version: 1}
	if err := store.New(e.app.db).Create(context.Background(), u); err != nil {
		e.t.Fatalf("insert %s: %v", email, err)
	}
	return u
}

func (e *env) signup(email string) *userv1.User {
	e.t.Helper()
	resp, err := e.client.CreateUser(context.Background(), &userv1.CreateUserRequest{Email: email, Password: "correct horse battery", DisplayName: "Test"})
	if err != nil {
		e.t.Fatalf("signup %s: %v", email, err)
	}
	return resp.GetUser()
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("code = %v (%v), want %v", got, err, want)
	}
}

// violations returns the field names of an InvalidArgument's BadRequest.
func violations(t *testing.T, err error) []string {
	t.Helper()
	wantCode(t, err, codes.InvalidArgument)
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if len(fields) == 0 {
		t.Fatalf("InvalidArgument without BadRequest field violations: %v", err)
	}
	slices.Sort(fields)
	return fields
}

func TestEveryMethodProtected(t *testing.T) {
	for _, signup := range []bool{true, false} {
		t.Run(fmt.Sprintf("signup=%v", signup), func(t *testing.T) {
			e := startApp(t, fmt.Sprintf("ALLOW_SIGNUP=%v", signup))
			allow := authntest.Allowlist{
				Anonymous: append([]string{userv1.UserService_HealthCheck_FullMethodName}, authn.PublicInfrastructureServices()...),
			}
			if signup {
				allow.Public = []string{userv1.UserService_CreateUser_FullMethodName}
			}
			authntest.CheckAllMethodsProtected(t, e.conn, e.app.Server.GRPC.GetServiceInfo(), allow)
		})
	}
}

// TestEveryMethodAuthorized walks every registered method against the one
// policy: each has a declared access, and none lets a plain user act on
// another user's id (or reach an admin or service method at all).
func TestEveryMethodAuthorized(t *testing.T) {
	for _, signup := range []bool{true, false} {
		t.Run(fmt.Sprintf("signup=%v", signup), func(t *testing.T) {
			e := startApp(t, fmt.Sprintf("ALLOW_SIGNUP=%v", signup))
			plain, other := e.insert("plain@example.com"), e.insert("other@example.com")
			authztest.CheckPolicy(t, e.conn, e.app.Server.GRPC.GetServiceInfo(), user.Policy(signup),
				authztest.Caller{Ctx: e.as(plain.ID), ID: plain.ID, Other: other.ID})
			// Nothing the walk sent was carried out.
			for _, u := range []user.User{plain, other} {
				got, err := e.client.GetUser(e.admin(), &userv1.GetUserRequest{Id: u.ID})
				if err != nil || got.GetUser().GetEtag() != "1" {
					t.Errorf("%s after the walk: %v, %v", u.Email, got.GetUser(), err)
				}
			}
		})
	}
}

func TestCreateUser(t *testing.T) {
	e := startApp(t)
	u := e.signup("Alice@Example.com")
	id, err := uuid.Parse(u.GetId())
	if err != nil || id.Version() != 7 {
		t.Errorf("id %q is not a UUIDv7", u.GetId())
	}
	if u.GetEmail() != "alice@example.com" || u.GetDisplayName() != "Test" || len(u.GetRoles()) != 0 {
		t.Errorf("created user = %+v", u)
	}
	if !u.GetCreateTime().IsValid() || u.GetCreateTime().AsTime().Before(time.Now().Add(-time.Minute)) || !u.GetUpdateTime().AsTime().Equal(u.GetCreateTime().AsTime()) {
		t.Errorf("timestamps: create %v update %v", u.GetCreateTime(), u.GetUpdateTime())
	}

	tests := []struct {
		name       string
		ctx        context.Context
		req        *userv1.CreateUserRequest
		code       codes.Code
		violations []string
	}{
		{name: "email taken, other case", req: &userv1.CreateUserRequest{Email: "ALICE@example.COM", Password: "velvet anchor 42"}, code: codes.AlreadyExists},
		{name: "everything wrong", req: &userv1.CreateUserRequest{Email: "not-an-email", Password: "short", DisplayName: strings.Repeat("x", 101)}, code: codes.InvalidArgument, violations: []string{"display_name", "email", "password"}},
		{name: "display name form", req: &userv1.CreateUserRequest{Email: "Bob <bob@example.com>", Password: "velvet anchor 42"}, code: codes.InvalidArgument, violations: []string{"email"}},
		{name: "empty", req: &userv1.CreateUserRequest{}, code: codes.InvalidArgument, violations: []string{"email", "password"}},
		{name: "password too long", req: &userv1.CreateUserRequest{Email: "long@example.com", Password: strings.Repeat("p", 129)}, code: codes.InvalidArgument, violations: []string{"password"}},
		{name: "control characters", req: &userv1.CreateUserRequest{Email: "ctl@example.com", Password: "velvet anchor 42", DisplayName: "a\x00b"}, code: codes.InvalidArgument, violations: []string{"display_name"}},
		{name: "unknown role", ctx: e.admin(), req: &userv1.CreateUserRequest{Email: "r@example.com", Password: "velvet anchor 42", Roles: []string{"root"}}, code: codes.InvalidArgument, violations: []string{"roles"}},
		{name: "service role is not assignable", ctx: e.admin(), req: &userv1.CreateUserRequest{Email: "svc@example.com", Password: "velvet anchor 42", Roles: []string{"service"}}, code: codes.InvalidArgument, violations: []string{"roles"}},
		{name: "token of a user that does not exist", ctx: e.as(uuid.NewString(), "admin"), req: &userv1.CreateUserRequest{Email: "ghost@example.com", Password: "velvet anchor 42", Roles: []string{"admin"}}, code: codes.Unauthenticated},
		{name: "token claiming admin for a plain user", ctx: e.as(u.GetId(), "admin"), req: &userv1.CreateUserRequest{Email: "claims@example.com", Password: "velvet anchor 42", Roles: []string{"admin"}}, code: codes.PermissionDenied},
		{name: "roles need admin", req: &userv1.CreateUserRequest{Email: "sneaky@example.com", Password: "velvet anchor 42", Roles: []string{"admin"}}, code: codes.PermissionDenied},
		{name: "roles need admin even signed in", ctx: e.as(u.GetId()), req: &userv1.CreateUserRequest{Email: "sneaky2@example.com", Password: "velvet anchor 42", Roles: []string{"admin"}}, code: codes.PermissionDenied},
		{name: "bad token on public method", ctx: authntest.BearerContext(context.Background(), "garbage"), req: &userv1.CreateUserRequest{Email: "g@example.com", Password: "velvet anchor 42"}, code: codes.Unauthenticated},
		{name: "admin assigns roles", ctx: e.admin(), req: &userv1.CreateUserRequest{Email: "ops@example.com", Password: "velvet anchor 42", Roles: []string{"admin", "admin"}}, code: codes.OK},
		{name: "max lengths accepted", req: &userv1.CreateUserRequest{Email: "max@example.com", Password: strings.Repeat("é", 128), DisplayName: strings.Repeat("名", 100)}, code: codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			resp, err := e.client.CreateUser(ctx, tt.req)
			if tt.violations != nil {
				if got := violations(t, err); !slices.Equal(got, tt.violations) {
					t.Errorf("violations = %v, want %v", got, tt.violations)
				}
				return
			}
			wantCode(t, err, tt.code)
			if tt.code == codes.OK && len(tt.req.Roles) > 0 && !slices.Equal(resp.GetUser().GetRoles(), []string{"admin"}) {
				t.Errorf("roles = %v, want [admin] (deduplicated)", resp.GetUser().GetRoles())
			}
		})
	}
	// Nothing half-written: only the successful creates exist.
	list, err := e.client.ListUsers(e.admin(), &userv1.ListUsersRequest{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	var emails []string
	for _, u := range list.GetUsers() {
		emails = append(emails, u.GetEmail())
	}
	slices.Sort(emails)
	if want := []string{"alice@example.com", "max@example.com", "ops@example.com", "root@example.com"}; !slices.Equal(emails, want) {
		t.Errorf("stored users = %v, want %v", emails, want)
	}
}

func TestSignupDisabled(t *testing.T) {
	e := startApp(t, "ALLOW_SIGNUP=false")
	_, err := e.client.CreateUser(context.Background(), &userv1.CreateUserRequest{Email: "a@example.com", Password: "velvet anchor 42"})
	wantCode(t, err, codes.Unauthenticated)
	plain := e.insert("plain@example.com")
	_, err = e.client.CreateUser(e.as(plain.ID), &userv1.CreateUserRequest{Email: "a@example.com", Password: "velvet anchor 42"})
	wantCode(t, err, codes.PermissionDenied)
	_, err = e.client.CreateUser(e.admin(), &userv1.CreateUserRequest{Email: "a@example.com", Password: "velvet anchor 42"})
	wantCode(t, err, codes.OK)
}

func TestGetUserAuthorization(t *testing.T) {
	e := startApp(t)
	alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")
	other := e.signer.Token(t, alice.GetId(), authntest.Audience("someone-else"))
	tests := []struct {
		name string
		ctx  context.Context
		id   string
		code codes.Code
	}{
		{"self", e.as(alice.GetId()), alice.GetId(), codes.OK},
		{"other user", e.as(alice.GetId()), bob.GetId(), codes.PermissionDenied},
		{"admin", e.admin(), bob.GetId(), codes.OK},
		{"admin, unknown id", e.admin(), uuid.NewString(), codes.NotFound},
		{"non-admin, unknown id looks like any other user", e.as(alice.GetId()), uuid.NewString(), codes.PermissionDenied},
		{"no token", context.Background(), alice.GetId(), codes.Unauthenticated},
		{"expired", authntest.BearerContext(context.Background(), e.signer.Token(t, alice.GetId(), authntest.ExpiresIn(-time.Hour))), alice.GetId(), codes.Unauthenticated},
		{"wrong audience", authntest.BearerContext(context.Background(), other), alice.GetId(), codes.Unauthenticated},
		{"alg none", authntest.BearerContext(context.Background(), noneToken(alice.GetId())), alice.GetId(), codes.Unauthenticated},
		{"garbled", authntest.BearerContext(context.Background(), "eyJ.garbled.token"), alice.GetId(), codes.Unauthenticated},
		{"bad id", e.admin(), "1; DROP TABLE users", codes.InvalidArgument},
		{"non-admin, bad id", e.as(alice.GetId()), "1; DROP TABLE users", codes.PermissionDenied},
		{"token claims admin, account is not", e.as(alice.GetId(), "admin"), bob.GetId(), codes.PermissionDenied},
		{"token of no account", e.as(uuid.NewString(), "admin"), bob.GetId(), codes.Unauthenticated},
		{"token of an ended session", authntest.BearerContext(context.Background(), e.signer.Token(t, alice.GetId(), authntest.Claim("session_version", 7))), alice.GetId(), codes.Unauthenticated},
		{"service token", e.service(), alice.GetId(), codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.client.GetUser(tt.ctx, &userv1.GetUserRequest{Id: tt.id})
			wantCode(t, err, tt.code)
			if tt.code == codes.OK && resp.GetUser().GetId() != tt.id {
				t.Errorf("got user %q, want %q", resp.GetUser().GetId(), tt.id)
			}
		})
	}
}

// noneToken is an unsigned JWT with alg none and otherwise valid claims.
func noneToken(sub string) string {
	enc := b64
	exp := time.Now().Add(time.Hour).Unix()
	return enc(`{"alg":"none","typ":"at+jwt"}`) + "." +
		enc(fmt.Sprintf(`{"sub":%q,"iss":"http://localhost:8082","aud":"gatehouse","exp":%d,"roles":["admin"]}`, sub, exp)) + "."
}

func TestListUsersPagination(t *testing.T) {
	e := startApp(t)
	e.admin() // the admin is the first user
	want := []string{e.rootID}
	for i := range 7 {
		want = append(want, e.signup(fmt.Sprintf("u%d@example.com", i)).GetId())
	}
	var got []string
	token := ""
	pages := 0
	for {
		resp, err := e.client.ListUsers(e.admin(), &userv1.ListUsersRequest{PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, u := range resp.GetUsers() {
			got = append(got, u.GetId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Errorf("pages = %d, ids = %v; want 3 pages of %v in creation order", pages, got, want)
	}

	first, err := e.client.ListUsers(e.admin(), &userv1.ListUsersRequest{PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	tok := first.GetNextPageToken()
	tampered := []byte(tok)
	tampered[5] ^= 0x01
	for _, tt := range []struct {
		name  string
		req   *userv1.ListUsersRequest
		field string
	}{
		{"tampered token", &userv1.ListUsersRequest{PageToken: string(tampered)}, "page_token"},
		{"truncated token", &userv1.ListUsersRequest{PageToken: tok[:len(tok)-2]}, "page_token"},
		{"garbage token", &userv1.ListUsersRequest{PageToken: "!!!not base64!!!"}, "page_token"},
		{"negative size", &userv1.ListUsersRequest{PageSize: -1}, "page_size"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.client.ListUsers(e.admin(), tt.req)
			if got := violations(t, err); !slices.Equal(got, []string{tt.field}) {
				t.Errorf("violations = %v, want [%s]", got, tt.field)
			}
		})
	}
	huge, err := e.client.ListUsers(e.admin(), &userv1.ListUsersRequest{PageSize: 1 << 30})
	if err != nil || len(huge.GetUsers()) != 8 || huge.GetNextPageToken() != "" {
		t.Errorf("huge page size: %d users, token %q, err %v; want it coerced to the maximum", len(huge.GetUsers()), huge.GetNextPageToken(), err)
	}
	_, err = e.client.ListUsers(e.as(want[1]), &userv1.ListUsersRequest{})
	wantCode(t, err, codes.PermissionDenied)
}

func TestUpdateUser(t *testing.T) {
	e := startApp(t)
	alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")
	self := e.as(alice.GetId())
	mask := func(p ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: p} }

	resp, err := e.client.UpdateUser(self, &userv1.UpdateUserRequest{Id: alice.GetId(), DisplayName: "Alice A."})
	if err != nil {
		t.Fatal(err)
	}
	if u := resp.GetUser(); u.GetDisplayName() != "Alice A." || u.GetEmail() != "alice@example.com" || !u.GetUpdateTime().AsTime().After(u.GetCreateTime().AsTime()) || u.GetEtag() != "2" {
		t.Errorf("after update: %+v", u)
	}
	tests := []struct {
		name string
		ctx  context.Context
		req  *userv1.UpdateUserRequest
		code codes.Code
	}{
		{"roles need admin", self, &userv1.UpdateUserRequest{Id: alice.GetId(), Roles: []string{"admin"}, UpdateMask: mask("roles")}, codes.PermissionDenied},
		{"other user", self, &userv1.UpdateUserRequest{Id: bob.GetId(), DisplayName: "x"}, codes.PermissionDenied},
		{"own email", self, &userv1.UpdateUserRequest{Id: alice.GetId(), Email: "alice2@example.com"}, codes.PermissionDenied},
		{"own password", self, &userv1.UpdateUserRequest{Id: alice.GetId(), Password: "brand new pass"}, codes.PermissionDenied},
		{"own password, admin too", e.admin(), &userv1.UpdateUserRequest{Id: e.rootID, Password: "brand new pass", UpdateMask: mask("password")}, codes.PermissionDenied},
		{"unknown path", self, &userv1.UpdateUserRequest{Id: alice.GetId(), UpdateMask: mask("id")}, codes.InvalidArgument},
		{"path twice", e.admin(), &userv1.UpdateUserRequest{Id: alice.GetId(), Password: "brand new pass", UpdateMask: mask("password", "password")}, codes.InvalidArgument},
		{"nothing to update", self, &userv1.UpdateUserRequest{Id: alice.GetId()}, codes.InvalidArgument},
		{"bad password", e.admin(), &userv1.UpdateUserRequest{Id: alice.GetId(), Password: "short"}, codes.InvalidArgument},
		{"email taken", e.admin(), &userv1.UpdateUserRequest{Id: alice.GetId(), Email: "BOB@example.com"}, codes.AlreadyExists},
		{"service role", e.admin(), &userv1.UpdateUserRequest{Id: bob.GetId(), Roles: []string{"service"}, UpdateMask: mask("roles")}, codes.InvalidArgument},
		{"malformed etag", self, &userv1.UpdateUserRequest{Id: alice.GetId(), DisplayName: "x", Etag: "W/abc"}, codes.InvalidArgument},
		{"stale etag", self, &userv1.UpdateUserRequest{Id: alice.GetId(), DisplayName: "x", Etag: "1"}, codes.Aborted},
		{"current etag", self, &userv1.UpdateUserRequest{Id: alice.GetId(), DisplayName: "Alice B.", Etag: "2"}, codes.OK},
		{"admin sets roles", e.admin(), &userv1.UpdateUserRequest{Id: bob.GetId(), Roles: []string{"admin"}, UpdateMask: mask("roles")}, codes.OK},
		{"admin, unknown id", e.admin(), &userv1.UpdateUserRequest{Id: uuid.NewString(), DisplayName: "x"}, codes.NotFound},
		{"admin resets a password", e.admin(), &userv1.UpdateUserRequest{Id: alice.GetId(), Password: "brand new pass"}, codes.OK},
		{"the reset ended the old session", self, &userv1.UpdateUserRequest{Id: alice.GetId(), DisplayName: "x"}, codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.client.UpdateUser(tt.ctx, tt.req)
			wantCode(t, err, tt.code)
		})
	}
	got, err := e.client.GetUser(e.admin(), &userv1.GetUserRequest{Id: bob.GetId()})
	if err != nil || !slices.Equal(got.GetUser().GetRoles(), []string{"admin"}) {
		t.Errorf("bob after role update: %v %v", got.GetUser(), err)
	}
	if _, err := e.client.VerifyPassword(e.service(), &userv1.VerifyPasswordRequest{Email: "alice@example.com", Password: "brand new pass"}); err != nil {
		t.Errorf("new password does not verify: %v", err)
	}
	_, err = e.client.VerifyPassword(e.service(), &userv1.VerifyPasswordRequest{Email: "alice@example.com", Password: "correct horse battery"})
	wantCode(t, err, codes.Unauthenticated)
	a, err := e.client.GetSessionState(e.service(), &userv1.GetSessionStateRequest{Id: alice.GetId()})
	if err != nil || a.GetSessionVersion() != 1 || a.GetUser().GetDisplayName() != "Alice B." {
		t.Errorf("alice's session state after a reset: %v, %v", a, err)
	}
}

// TestChangePassword: a user changes its own password only with the
// current one; a wrong one changes nothing; failed attempts are limited per
// user and address (with a retry delay); success ends every session, the
// caller's included.
func TestChangePassword(t *testing.T) {
	e := startApp(t, "PASSWORD_CHANGE_RATE=4")
	alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")
	self := e.as(alice.GetId())
	tests := []struct {
		name string
		ctx  context.Context
		req  *userv1.ChangePasswordRequest
		code codes.Code
	}{
		{"another user", self, &userv1.ChangePasswordRequest{Id: bob.GetId(), CurrentPassword: "correct horse battery", NewPassword: "stolen account"}, codes.PermissionDenied},
		{"admin for another user", e.admin(), &userv1.ChangePasswordRequest{Id: bob.GetId(), CurrentPassword: "correct horse battery", NewPassword: "stolen account"}, codes.PermissionDenied},
		{"no current password", self, &userv1.ChangePasswordRequest{Id: alice.GetId(), NewPassword: "a new passphrase"}, codes.InvalidArgument},
		{"new password too short", self, &userv1.ChangePasswordRequest{Id: alice.GetId(), CurrentPassword: "correct horse battery", NewPassword: "short"}, codes.InvalidArgument},
		{"wrong current password", self, &userv1.ChangePasswordRequest{Id: alice.GetId(), CurrentPassword: "wrong horse", NewPassword: "a new passphrase"}, codes.InvalidArgument},
		{"right current password", self, &userv1.ChangePasswordRequest{Id: alice.GetId(), CurrentPassword: "correct horse battery", NewPassword: "a new passphrase"}, codes.OK},
		{"the caller's own session ended", self, &userv1.ChangePasswordRequest{Id: alice.GetId(), CurrentPassword: "a new passphrase", NewPassword: "another one"}, codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.client.ChangePassword(tt.ctx, tt.req)
			wantCode(t, err, tt.code)
			if tt.name == "wrong current password" {
				if got := violations(t, err); !slices.Equal(got, []string{"current_password"}) {
					t.Errorf("violations = %v", got)
				}
			}
		})
	}
	if _, err := e.client.VerifyPassword(e.service(), &userv1.VerifyPasswordRequest{Email: "alice@example.com", Password: "a new passphrase"}); err != nil {
		t.Fatalf("the new password does not verify: %v", err)
	}
	// A new login is at the new session version.
	fresh := authntest.BearerContext(context.Background(), e.signer.Token(t, alice.GetId(), authntest.Claim("session_version", 1)))
	if _, err := e.client.GetUser(fresh, &userv1.GetUserRequest{Id: alice.GetId()}); err != nil {
		t.Fatalf("a token at the new session version: %v", err)
	}
	// The limit counts failures only: four a minute per user and address
	// (three used above: the two malformed requests, whose check costs
	// too, and the wrong password; the success was given back), then
	// ResourceExhausted with a retry delay, even with the right password.
	_, err := e.client.ChangePassword(fresh, &userv1.ChangePasswordRequest{Id: alice.GetId(), CurrentPassword: "a guess", NewPassword: "yet another one"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = e.client.ChangePassword(fresh, &userv1.ChangePasswordRequest{Id: alice.GetId(), CurrentPassword: "a new passphrase", NewPassword: "yet another one"})
	wantCode(t, err, codes.ResourceExhausted)
	if d, ok := rpcerr.RetryDelay(err); !ok || d <= 0 || d > time.Minute {
		t.Errorf("ResourceExhausted without a sensible RetryInfo: %v, %v", d, ok)
	}
	// Bob's budget is his own.
	if _, err := e.client.ChangePassword(e.as(bob.GetId()), &userv1.ChangePasswordRequest{Id: bob.GetId(), CurrentPassword: "correct horse battery", NewPassword: "bob's new one"}); err != nil {
		t.Fatalf("bob: %v", err)
	}
}

// TestSignupLimit: anonymous sign-ups are limited per client address,
// with a retry delay; an admin creating users is not.
func TestSignupLimit(t *testing.T) {
	e := startApp(t, "SIGNUP_RATE_PER_ADDR=2")
	e.signup("one@example.com")
	e.signup("two@example.com")
	_, err := e.client.CreateUser(context.Background(), &userv1.CreateUserRequest{Email: "three@example.com", Password: "velvet anchor 42"})
	wantCode(t, err, codes.ResourceExhausted)
	// A sign-up comes back every 30 s (two a minute), less the time the
	// first two took.
	if d, ok := rpcerr.RetryDelay(err); !ok || d < 20*time.Second || d > 30*time.Second {
		t.Errorf("RetryInfo = %v, %v; want at most 30s (two a minute)", d, ok)
	}
	if _, err := e.client.CreateUser(e.admin(), &userv1.CreateUserRequest{Email: "by-admin@example.com", Password: "velvet anchor 42"}); err != nil {
		t.Fatalf("admin create during the sign-up limit: %v", err)
	}
}

// TestSessionsAndTheServiceRole: GetSessionState and EndSessions are the
// Auth service's; ending sessions refuses the user's earlier tokens at
// once. A human account holding the service role (written before it was
// forbidden) is not the service.
func TestSessionsAndTheServiceRole(t *testing.T) {
	e := startApp(t)
	alice := e.signup("alice@example.com")
	st, err := e.client.GetSessionState(e.service(), &userv1.GetSessionStateRequest{Id: alice.GetId()})
	if err != nil || st.GetSessionVersion() != 0 || st.GetUser().GetId() != alice.GetId() {
		t.Fatalf("GetSessionState = %v, %v", st, err)
	}
	_, err = e.client.GetSessionState(e.service(), &userv1.GetSessionStateRequest{Id: uuid.NewString()})
	wantCode(t, err, codes.NotFound)
	ended, err := e.client.EndSessions(e.service(), &userv1.EndSessionsRequest{Id: alice.GetId()})
	if err != nil || ended.GetSessionVersion() != 1 {
		t.Fatalf("EndSessions = %v, %v", ended, err)
	}
	_, err = e.client.GetUser(e.as(alice.GetId()), &userv1.GetUserRequest{Id: alice.GetId()})
	wantCode(t, err, codes.Unauthenticated)
	if reason := authn.RejectionReason(err); reason != authn.ReasonSessionEnded {
		t.Errorf("reason = %q, want %s", reason, authn.ReasonSessionEnded)
	}
	_, err = e.client.EndSessions(e.service(), &userv1.EndSessionsRequest{Id: uuid.NewString()})
	wantCode(t, err, codes.NotFound)

	human := e.insert("legacy-service@example.com", "service")
	_, err = e.client.VerifyPassword(e.as(human.ID, "service"), &userv1.VerifyPasswordRequest{Email: "alice@example.com", Password: "correct horse battery"})
	wantCode(t, err, codes.PermissionDenied)
	_, err = e.client.VerifyPassword(e.as(identity.ServiceSubject), &userv1.VerifyPasswordRequest{Email: "alice@example.com", Password: "correct horse battery"})
	wantCode(t, err, codes.PermissionDenied) // the service's subject without its role
}

// TestInternalErrorsLogTheirCause: a row the store cannot read (roles that
// are not strings) makes the caller's resolution fail. The client gets a
// bare Internal, on the eager path (GetUser) and on the lazy one of a
// public method (CreateUser with a token); the log says why, each time.
func TestInternalErrorsLogTheirCause(t *testing.T) {
	e := startApp(t)
	alice := e.signup("alice@example.com")
	if _, err := e.app.db.SQL().ExecContext(context.Background(), `UPDATE users SET roles = '[1]' WHERE id = $1`, alice.GetId()); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.GetUser(e.as(alice.GetId()), &userv1.GetUserRequest{Id: alice.GetId()})
	wantCode(t, err, codes.Internal)
	_, err = e.client.CreateUser(e.as(alice.GetId()), &userv1.CreateUserRequest{Email: "new@example.com", Password: "velvet anchor 42"})
	wantCode(t, err, codes.Internal)
	if strings.Contains(err.Error(), "roles") {
		t.Errorf("the client's message names the cause: %v", err)
	}
	if n := strings.Count(e.logs.String(), "roles of user "+alice.GetId()); n != 2 {
		t.Errorf("the cause is logged %d times, want once per call (2):\n%s", n, e.logs.String())
	}
}

// TestDeleteWithEtagAndTheLastAdmin: a stale etag deletes nothing; the last
// admin can neither delete itself nor lose the role.
func TestDeleteWithEtagAndTheLastAdmin(t *testing.T) {
	e := startApp(t)
	alice := e.signup("alice@example.com")
	_, err := e.client.DeleteUser(e.admin(), &userv1.DeleteUserRequest{Id: alice.GetId(), Etag: "7"})
	wantCode(t, err, codes.Aborted)
	if _, err := e.client.DeleteUser(e.admin(), &userv1.DeleteUserRequest{Id: alice.GetId(), Etag: alice.GetEtag()}); err != nil {
		t.Fatalf("delete at the current etag: %v", err)
	}
	_, err = e.client.DeleteUser(e.admin(), &userv1.DeleteUserRequest{Id: e.rootID})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = e.client.UpdateUser(e.admin(), &userv1.UpdateUserRequest{Id: e.rootID, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"roles"}}})
	wantCode(t, err, codes.FailedPrecondition)
	if _, err := e.client.ListUsers(e.admin(), &userv1.ListUsersRequest{}); err != nil {
		t.Fatalf("the last admin after refused changes: %v", err)
	}
}

func TestDeleteUser(t *testing.T) {
	e := startApp(t)
	alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")
	_, err := e.client.DeleteUser(e.as(alice.GetId()), &userv1.DeleteUserRequest{Id: bob.GetId()})
	wantCode(t, err, codes.PermissionDenied)
	if _, err := e.client.DeleteUser(e.as(alice.GetId()), &userv1.DeleteUserRequest{Id: alice.GetId()}); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.GetUser(e.admin(), &userv1.GetUserRequest{Id: alice.GetId()})
	wantCode(t, err, codes.NotFound)
	_, err = e.client.DeleteUser(e.admin(), &userv1.DeleteUserRequest{Id: alice.GetId()})
	wantCode(t, err, codes.NotFound)
	if _, err := e.client.DeleteUser(e.admin(), &userv1.DeleteUserRequest{Id: bob.GetId()}); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyPassword(t *testing.T) {
	e := startApp(t)
	alice := e.signup("alice@example.com")
	svc := e.service()
	tests := []struct {
		name  string
		ctx   context.Context
		email string
		pw    string
		code  codes.Code
	}{
		{"right", svc, "alice@example.com", "correct horse battery", codes.OK},
		{"email case-insensitive", svc, "ALICE@example.com", "correct horse battery", codes.OK},
		{"wrong password", svc, "alice@example.com", "wrong horse", codes.Unauthenticated},
		{"unknown email", svc, "nobody@example.com", "correct horse battery", codes.Unauthenticated},
		{"huge password", svc, "alice@example.com", strings.Repeat("x", 1<<16), codes.Unauthenticated},
		{"admin is not service", e.admin(), "alice@example.com", "correct horse battery", codes.PermissionDenied},
		{"user is not service", e.as(alice.GetId()), "alice@example.com", "correct horse battery", codes.PermissionDenied},
		{"no token", context.Background(), "alice@example.com", "correct horse battery", codes.Unauthenticated},
	}
	var messages []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.client.VerifyPassword(tt.ctx, &userv1.VerifyPasswordRequest{Email: tt.email, Password: tt.pw})
			wantCode(t, err, tt.code)
			if tt.code == codes.OK && resp.GetUser().GetId() != alice.GetId() {
				t.Errorf("user = %v", resp.GetUser())
			}
			if tt.ctx == svc && tt.code == codes.Unauthenticated {
				messages = append(messages, status.Convert(err).Message())
			}
		})
	}
	for _, m := range messages {
		if m != messages[0] {
			t.Errorf("failed verifications differ in message (%q vs %q): they must not reveal which part was wrong", m, messages[0])
		}
	}
}

func TestHealth(t *testing.T) {
	e := startApp(t)
	resp, err := e.client.HealthCheck(context.Background(), &emptypb.Empty{})
	if err != nil || resp.GetStatus() != userv1.HealthCheckResponse_SERVING_STATUS_SERVING || !resp.GetTimestamp().IsValid() {
		t.Fatalf("HealthCheck = %v, %v", resp, err)
	}
	h := healthpb.NewHealthClient(e.conn)
	for _, svc := range []string{"", "user.v1.UserService", "liveness"} {
		r, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("grpc.health.v1 %q = %v, %v", svc, r, err)
		}
	}
}

func TestBootstrapAdmin(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte("root keeps the keys\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startApp(t, "BOOTSTRAP_ADMIN_EMAIL=Admin@Example.com", "BOOTSTRAP_ADMIN_PASSWORD_FILE="+pwFile)
	resp, err := e.client.VerifyPassword(e.service(), &userv1.VerifyPasswordRequest{Email: "admin@example.com", Password: "root keeps the keys"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resp.GetUser().GetRoles(), []string{"admin"}) {
		t.Errorf("bootstrap admin roles = %v", resp.GetUser().GetRoles())
	}
	// A second start finds the admin and creates nothing.
	if err := e.app.Service.EnsureAdmin(context.Background(), "admin@example.com", "root keeps the keys"); err != nil {
		t.Errorf("second EnsureAdmin: %v", err)
	}
	list, err := e.client.ListUsers(e.as(resp.GetUser().GetId(), "admin"), &userv1.ListUsersRequest{})
	if err != nil || len(list.GetUsers()) != 1 {
		t.Errorf("users after two bootstraps: %v, %v", list.GetUsers(), err)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"two key sources", []string{"JWKS_URL=http://x/jwks", "JWT_SECRET=0123456789abcdef0123456789abcdef"}, "set only one of JWKS_URL"},
		{"short secret", []string{"JWT_SECRET=short"}, "JWT_SECRET must be at least 32 bytes"},
		{"admin without password", []string{"BOOTSTRAP_ADMIN_EMAIL=a@example.com"}, "needs BOOTSTRAP_ADMIN_PASSWORD"},
		{"bad drain", []string{"DRAIN_DELAY=forever"}, `invalid DRAIN_DELAY="forever"`},
		{"bad bool", []string{"ALLOW_SIGNUP=perhaps"}, `invalid ALLOW_SIGNUP="perhaps"`},
		{"bad jwks url", []string{"JWKS_URL=ftp://x"}, "JWKS_URL must be an http(s) URL"},
		{"negative token cache", []string{"TOKEN_CACHE_SIZE=-1"}, "TOKEN_CACHE_SIZE must not be negative"},
		{"negative user cache", []string{"USER_CACHE_SIZE=-5"}, "USER_CACHE_SIZE must not be negative, got -5"},
		{"plaintext JWKS with TLS", []string{"TLS_CERT_FILE=/t/tls.crt", "TLS_KEY_FILE=/t/tls.key", "JWKS_URL=http://auth:8082/.well-known/jwks.json"}, "JWKS_URL must be https:// when TLS_CERT_FILE is set"},
		{"no service peer with TLS", []string{"TLS_CERT_FILE=/t/tls.crt", "TLS_KEY_FILE=/t/tls.key", "SERVICE_PEER_NAMES=,"}, "SERVICE_PEER_NAMES must name"},
		{"negative verify rate", []string{"VERIFY_PASSWORD_RATE=-1"}, "VERIFY_PASSWORD_RATE must not be negative"},
		{"issuer not a URL", []string{"JWT_ISSUER=gatehouse-auth"}, `JWT_ISSUER: issuer "gatehouse-auth": want an absolute https URL`},
		{"issuer with trailing slash", []string{"JWT_ISSUER=https://auth.example.com/"}, "no trailing slash"},
		{"issuer with query", []string{"JWT_ISSUER=https://auth.example.com?x=1"}, "no query or fragment"},
		{"plaintext discovery with TLS", []string{"TLS_CERT_FILE=/t/tls.crt", "TLS_KEY_FILE=/t/tls.key", "JWT_ISSUER=http://auth:8082"}, "JWT_ISSUER must be https:// when TLS_CERT_FILE is set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadConfig = %v, want %q", err, tt.want)
			}
		})
	}
	cfg, err := LoadConfig(nil)
	if err != nil || cfg.JWKSURL != "" || cfg.JWTIssuer != "http://localhost:8082" || cfg.Server.GRPCAddr != ":50051" || cfg.Server.HTTPAddr != ":8081" {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}
	cfg, err = LoadConfig([]string{"TLS_CERT_FILE=/t/tls.crt", "TLS_KEY_FILE=/t/tls.key"})
	if err != nil || cfg.JWTIssuer != "https://localhost:8082" {
		t.Errorf("default JWT_ISSUER with TLS: %q, %v; want https", cfg.JWTIssuer, err)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestInputThatMeansOneThing replays the weak and look-alike input that
// used to be accepted: guessable passwords, emails that look identical but
// were distinct accounts, display names that reorder or hide text.
func TestInputThatMeansOneThing(t *testing.T) {
	e := startApp(t)
	strong := "velvet anchor 42"
	if _, err := e.client.CreateUser(context.Background(), &userv1.CreateUserRequest{Email: "müller@example.com", Password: strong}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		req   *userv1.CreateUserRequest
		code  codes.Code
		field string
	}{
		{"digits", &userv1.CreateUserRequest{Email: "a@example.com", Password: "12345678"}, codes.InvalidArgument, "password"},
		{"the word password", &userv1.CreateUserRequest{Email: "a@example.com", Password: "password"}, codes.InvalidArgument, "password"},
		{"eight spaces", &userv1.CreateUserRequest{Email: "a@example.com", Password: "        "}, codes.InvalidArgument, "password"},
		{"the email as password", &userv1.CreateUserRequest{Email: "zebulon.q@example.com", Password: "zebulon.q@example.com"}, codes.InvalidArgument, "password"},
		{"fullwidth letters", &userv1.CreateUserRequest{Email: "ａｄａ@example.com", Password: strong}, codes.InvalidArgument, "email"},
		{"a Cyrillic a among Latin", &userv1.CreateUserRequest{Email: "\u0430da@example.com", Password: strong}, codes.InvalidArgument, "email"},
		{"a Cyrillic o in the domain", &userv1.CreateUserRequest{Email: "ada@ex\u043ample.com", Password: strong}, codes.InvalidArgument, "email"},
		{"an IP literal", &userv1.CreateUserRequest{Email: "user@[127.0.0.1]", Password: strong}, codes.InvalidArgument, "email"},
		{"a zero width space", &userv1.CreateUserRequest{Email: "ad\u200ba@example.com", Password: strong}, codes.InvalidArgument, "email"},
		// White space net/mail takes for a letter, which NFKC keeps: inside,
		// a look-alike; in front, trimmed into an existing account.
		{"a line separator", &userv1.CreateUserRequest{Email: "ad\u2028a@example.com", Password: strong}, codes.InvalidArgument, "email"},
		{"a paragraph separator before an address", &userv1.CreateUserRequest{Email: "\u2029müller@example.com", Password: strong}, codes.InvalidArgument, "email"},
		{"an ogham space mark", &userv1.CreateUserRequest{Email: "ad\u1680a@example.com", Password: strong}, codes.InvalidArgument, "email"},
		{"NFD of an existing NFC address", &userv1.CreateUserRequest{Email: "mu\u0308ller@example.com", Password: strong}, codes.AlreadyExists, ""},
		{"right-to-left override", &userv1.CreateUserRequest{Email: "b@example.com", Password: strong, DisplayName: "admin\u202egnp.exe"}, codes.InvalidArgument, "display_name"},
		{"zero width space", &userv1.CreateUserRequest{Email: "b@example.com", Password: strong, DisplayName: "Ad\u200ba"}, codes.InvalidArgument, "display_name"},
		{"100 combining marks", &userv1.CreateUserRequest{Email: "b@example.com", Password: strong, DisplayName: "Z" + strings.Repeat("\u0301", 99)}, codes.InvalidArgument, "display_name"},
		{"5 combining marks", &userv1.CreateUserRequest{Email: "b@example.com", Password: strong, DisplayName: "Z" + strings.Repeat("\u0301\u0300", 3)}, codes.InvalidArgument, "display_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.client.CreateUser(context.Background(), tt.req)
			if tt.field != "" {
				if got := violations(t, err); !slices.Equal(got, []string{tt.field}) {
					t.Fatalf("violations = %v, want [%s]", got, tt.field)
				}
				return
			}
			wantCode(t, err, tt.code)
		})
	}
	// What is accepted, and how it is stored: a long passphrase, a
	// Cyrillic address (one script per part), a Japanese name, a name in
	// fullwidth letters and spaced out, stored in its one canonical form.
	for _, ok := range []struct{ email, password, name, wantEmail, wantName string }{
		{"Long@Example.com", strings.Repeat("a long passphrase is fine ", 5)[:128], "Zoë  Ünal ", "long@example.com", "Zoë Ünal"},
		{"иван@example.com", strong, "山田 太郎", "иван@example.com", "山田 太郎"},
		{"full@example.com", strong, "ｆｕｌｌ width", "full@example.com", "full width"},
	} {
		resp, err := e.client.CreateUser(context.Background(), &userv1.CreateUserRequest{Email: ok.email, Password: ok.password, DisplayName: ok.name})
		if err != nil {
			t.Fatalf("%s: %v", ok.email, err)
		}
		if resp.GetUser().GetEmail() != ok.wantEmail || resp.GetUser().GetDisplayName() != ok.wantName {
			t.Errorf("stored %q / %q, want %q / %q", resp.GetUser().GetEmail(), resp.GetUser().GetDisplayName(), ok.wantEmail, ok.wantName)
		}
	}
	// Logging in is by the same canonical form.
	if _, err := e.client.VerifyPassword(e.service(), &userv1.VerifyPasswordRequest{Email: "MU\u0308LLER@example.com", Password: strong}); err != nil {
		t.Errorf("the NFD, upper-case spelling does not find the account: %v", err)
	}
}
