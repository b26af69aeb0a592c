package authz_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/health/grpc_health_v1" // registers grpc.health.v1.Health
	"google.golang.org/grpc/status"

	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authz"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	alice = "01900000-0000-7000-8000-00000000000a"
	bob   = "01900000-0000-7000-8000-00000000000b"
)

var policy = authz.Policy{
	Methods: map[string]authz.Access{
		userv1.UserService_GetUser_FullMethodName:           authz.SelfOrAdmin,
		userv1.UserService_ChangePassword_FullMethodName:    authz.Self,
		userv1.UserService_ListUsers_FullMethodName:         authz.Admin,
		userv1.UserService_VerifyPassword_FullMethodName:    authz.Service,
		userv1.UserService_CreateUser_FullMethodName:        authz.Public,
		authv1.AuthService_RevokeAllSessions_FullMethodName: authz.SelfOrAdmin,
	},
	PublicServices: []string{"/grpc.health.v1.Health/"},
}

// accounts is the resolver of these tests: alice is a plain user, root an
// admin, "gone" was deleted, "down" cannot be looked up now, "broken"
// fails for another reason.
func resolve(calls *int) authz.Resolver {
	return func(_ context.Context, c *authn.Claims) (authz.Principal, error) {
		*calls++
		switch c.Subject {
		case alice, bob:
			return authz.Principal{ID: c.Subject}, nil
		case "root":
			return authz.Principal{ID: "root", Roles: []string{"admin"}}, nil
		case "svc":
			return authz.Principal{ID: "svc", Service: true}, nil
		case "gone":
			return authz.Principal{}, authz.ErrSessionEnded
		case "down":
			return authz.Principal{}, authz.ErrUnavailable
		default:
			return authz.Principal{}, errors.New("database says no")
		}
	}
}

func call(t *testing.T, i *authz.Interceptor, method, subject string, req any) (codes.Code, authz.Principal) {
	t.Helper()
	ctx := context.Background()
	if subject != "" {
		ctx = authn.ContextWithClaims(ctx, &authn.Claims{Subject: subject})
	}
	var got authz.Principal
	_, err := i.UnaryServerInterceptor()(ctx, req, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, _ any) (any, error) {
		p, err := authz.Caller(ctx)
		if err != nil && !errors.Is(err, authz.ErrAnonymous) {
			if st, ok := authz.CallerStatus(err); ok {
				return nil, st
			}
			return nil, status.Error(codes.Internal, "resolver")
		}
		got = p
		return nil, nil
	})
	return status.Code(err), got
}

func TestInterceptorEnforcesThePolicy(t *testing.T) {
	calls := 0
	i, err := authz.NewInterceptor(policy, resolve(&calls), "admin")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, subject string
		req                   any
		want                  codes.Code
	}{
		{"self", userv1.UserService_GetUser_FullMethodName, alice, &userv1.GetUserRequest{Id: alice}, codes.OK},
		{"other", userv1.UserService_GetUser_FullMethodName, alice, &userv1.GetUserRequest{Id: bob}, codes.PermissionDenied},
		{"admin on other", userv1.UserService_GetUser_FullMethodName, "root", &userv1.GetUserRequest{Id: bob}, codes.OK},
		{"service is no user", userv1.UserService_GetUser_FullMethodName, "svc", &userv1.GetUserRequest{Id: "svc"}, codes.PermissionDenied},
		{"self only, admin on other", userv1.UserService_ChangePassword_FullMethodName, "root", &userv1.ChangePasswordRequest{Id: bob}, codes.PermissionDenied},
		{"self only, self", userv1.UserService_ChangePassword_FullMethodName, alice, &userv1.ChangePasswordRequest{Id: alice}, codes.OK},
		{"user_id target", authv1.AuthService_RevokeAllSessions_FullMethodName, alice, &authv1.RevokeAllSessionsRequest{UserId: alice}, codes.OK},
		{"user_id target, other", authv1.AuthService_RevokeAllSessions_FullMethodName, alice, &authv1.RevokeAllSessionsRequest{UserId: bob}, codes.PermissionDenied},
		{"admin method, user", userv1.UserService_ListUsers_FullMethodName, alice, &userv1.ListUsersRequest{}, codes.PermissionDenied},
		{"admin method, admin", userv1.UserService_ListUsers_FullMethodName, "root", &userv1.ListUsersRequest{}, codes.OK},
		{"service method, admin", userv1.UserService_VerifyPassword_FullMethodName, "root", &userv1.VerifyPasswordRequest{}, codes.PermissionDenied},
		{"service method, service", userv1.UserService_VerifyPassword_FullMethodName, "svc", &userv1.VerifyPasswordRequest{}, codes.OK},
		{"no claims", userv1.UserService_GetUser_FullMethodName, "", &userv1.GetUserRequest{Id: alice}, codes.Unauthenticated},
		{"session ended", userv1.UserService_GetUser_FullMethodName, "gone", &userv1.GetUserRequest{Id: "gone"}, codes.Unauthenticated},
		{"state unavailable", userv1.UserService_GetUser_FullMethodName, "down", &userv1.GetUserRequest{Id: "down"}, codes.Unavailable},
		{"resolver failure", userv1.UserService_GetUser_FullMethodName, "broken", &userv1.GetUserRequest{Id: "broken"}, codes.Internal},
		{"undeclared method", userv1.UserService_DeleteUser_FullMethodName, "root", &userv1.DeleteUserRequest{Id: bob}, codes.PermissionDenied},
		{"public service", "/grpc.health.v1.Health/Check", "", nil, codes.OK},
		{"public, anonymous", userv1.UserService_CreateUser_FullMethodName, "", &userv1.CreateUserRequest{}, codes.OK},
		{"public, ended session asks for the caller", userv1.UserService_CreateUser_FullMethodName, "gone", &userv1.CreateUserRequest{}, codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := call(t, i, tt.method, tt.subject, tt.req); got != tt.want {
				t.Fatalf("code = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPublicMethodsResolveOnDemand: on a public method a token costs a
// resolution only when the handler asks for the caller, and once.
func TestPublicMethodsResolveOnDemand(t *testing.T) {
	calls := 0
	i, err := authz.NewInterceptor(policy, resolve(&calls), "admin")
	if err != nil {
		t.Fatal(err)
	}
	ctx := authn.ContextWithClaims(context.Background(), &authn.Claims{Subject: "root"})
	info := &grpc.UnaryServerInfo{FullMethod: userv1.UserService_CreateUser_FullMethodName}
	_, _ = i.UnaryServerInterceptor()(ctx, &userv1.CreateUserRequest{}, info, func(context.Context, any) (any, error) { return nil, nil })
	if calls != 0 {
		t.Fatalf("resolver called %d times by a handler that never asked", calls)
	}
	_, _ = i.UnaryServerInterceptor()(ctx, &userv1.CreateUserRequest{}, info, func(ctx context.Context, _ any) (any, error) {
		for range 3 {
			if p, err := authz.Caller(ctx); err != nil || !p.HasRole("admin") {
				t.Errorf("Caller = %+v, %v", p, err)
			}
		}
		return nil, nil
	})
	if calls != 1 {
		t.Fatalf("resolver called %d times for three Caller calls, want 1", calls)
	}
}

func TestSessionEndedCarriesItsReason(t *testing.T) {
	if got := authn.RejectionReason(authz.SessionEndedStatus()); got != authn.ReasonSessionEnded {
		t.Fatalf("reason = %q, want %s", got, authn.ReasonSessionEnded)
	}
}

// TestUnenforceablePoliciesAreRefused: a policy that cannot be enforced
// is an error at start, not a hole at run time.
func TestUnenforceablePoliciesAreRefused(t *testing.T) {
	noop := func(context.Context, *authn.Claims) (authz.Principal, error) { return authz.Principal{}, nil }
	tests := []struct {
		name   string
		policy authz.Policy
		admin  string
		want   string
	}{
		{"self on a request without an id", authz.Policy{Methods: map[string]authz.Access{userv1.UserService_ListUsers_FullMethodName: authz.Self}}, "admin", "needs a string field id or user_id"},
		{"unknown method", authz.Policy{Methods: map[string]authz.Access{"/user.v1.UserService/Nope": authz.Admin}}, "admin", "no such method"},
		{"unknown service", authz.Policy{Methods: map[string]authz.Access{"/x.v1.Nope/Get": authz.Admin}}, "admin", "service not registered"},
		{"malformed name", authz.Policy{Methods: map[string]authz.Access{"GetUser": authz.Admin}}, "admin", "want"},
		{"zero access", authz.Policy{Methods: map[string]authz.Access{userv1.UserService_GetUser_FullMethodName: 0}}, "admin", "unknown access"},
		{"bad public service", authz.Policy{PublicServices: []string{"grpc.health.v1.Health"}}, "admin", "public service"},
		{"no admin role", policy, "", "admin role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authz.NewInterceptor(tt.policy, noop, tt.admin)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewInterceptor = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if got := policy.PublicMethods(); len(got) != 1 || got[0] != userv1.UserService_CreateUser_FullMethodName {
		t.Errorf("PublicMethods = %v", got)
	}
}

// ctxStream is a server stream as an interceptor sees it: only its context
// matters before the handler reads a message.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s ctxStream) Context() context.Context { return s.ctx }

// TestStreamsGetTheCaller: the streaming half enforces the method's access
// and hands the handler the resolved caller through the stream's context.
func TestStreamsGetTheCaller(t *testing.T) {
	const watch = "/grpc.health.v1.Health/Watch" // a server stream in the registry
	calls := 0
	i, err := authz.NewInterceptor(authz.Policy{Methods: map[string]authz.Access{watch: authz.Admin}}, resolve(&calls), "admin")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		subject string
		want    codes.Code
	}{{"root", codes.OK}, {alice, codes.PermissionDenied}, {"gone", codes.Unauthenticated}} {
		ctx := authn.ContextWithClaims(context.Background(), &authn.Claims{Subject: tt.subject})
		var seen string
		err := i.StreamServerInterceptor()(nil, ctxStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: watch, IsServerStream: true},
			func(_ any, ss grpc.ServerStream) error {
				p, err := authz.Caller(ss.Context())
				if err != nil {
					return err
				}
				seen = p.ID
				return nil
			})
		if got := status.Code(err); got != tt.want {
			t.Errorf("%s: code = %v, want %v", tt.subject, got, tt.want)
		}
		if tt.want == codes.OK && seen != tt.subject {
			t.Errorf("%s: handler saw caller %q", tt.subject, seen)
		}
	}
}
