package authntest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder captures what CheckAllMethodsProtected reports, so we can test
// that it does report.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

const svc = "gatehouse.test.v1.Thing"

var desc = grpc.ServiceDesc{
	ServiceName: svc,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Get", Handler: okUnary("Get")},
		{MethodName: "Create", Handler: okUnary("Create")},
	},
	Streams: []grpc.StreamDesc{
		{StreamName: "Watch", Handler: okStream, ServerStreams: true},
		{StreamName: "Upload", Handler: okStream, ClientStreams: true},
	},
}

func okUnary(method string) grpc.MethodHandler {
	return func(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := new(emptypb.Empty)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(context.Context, any) (any, error) { return &emptypb.Empty{}, nil }
		if interceptor == nil {
			return h(ctx, in)
		}
		return interceptor(ctx, in, &grpc.UnaryServerInfo{FullMethod: "/" + svc + "/" + method}, h)
	}
}

func okStream(_ any, stream grpc.ServerStream) error {
	for {
		if err := stream.RecvMsg(new(emptypb.Empty)); err != nil {
			if errors.Is(err, io.EOF) {
				return stream.SendMsg(&emptypb.Empty{})
			}
			return err
		}
	}
}

func serve(t *testing.T, opts ...grpc.ServerOption) (*grpc.ClientConn, *grpc.Server) {
	srv := grpc.NewServer(opts...)
	srv.RegisterService(&desc, struct{}{})
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(); srv.Stop() })
	return conn, srv
}

func withAuth(t *testing.T, public ...string) []grpc.ServerOption {
	return withAuthOpts(t, public)
}

func withAuthOpts(t *testing.T, public []string, opts ...authn.InterceptorOption) []grpc.ServerOption {
	i, err := authn.NewInterceptor(authntest.NewSigner(t).Verifier(t), public, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(i.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(i.StreamServerInterceptor()),
	}
}

func TestCheckAllMethodsProtected(t *testing.T) {
	get, create, watch, upload := "/"+svc+"/Get", "/"+svc+"/Create", "/"+svc+"/Watch", "/"+svc+"/Upload"
	tests := []struct {
		name       string
		serverOpts func(t *testing.T) []grpc.ServerOption
		allow      authntest.Allowlist
		want       []string // substrings of the expected reports, in order
	}{
		{
			name:       "all protected",
			serverOpts: func(t *testing.T) []grpc.ServerOption { return withAuth(t, create) },
			allow:      authntest.Allowlist{Public: []string{create}},
		},
		{
			name: "anonymous method ignores the token",
			serverOpts: func(t *testing.T) []grpc.ServerOption {
				return withAuthOpts(t, []string{create}, authn.WithAnonymousMethods(get))
			},
			allow: authntest.Allowlist{Public: []string{create}, Anonymous: []string{get}},
		},
		{
			name:       "declared anonymous, but protected",
			serverOpts: func(t *testing.T) []grpc.ServerOption { return withAuth(t) },
			allow:      authntest.Allowlist{Anonymous: []string{get}},
			want:       []string{"anonymous " + get + " without a token: refused for want of one"},
		},
		{
			name:       "declared anonymous, but the token is read",
			serverOpts: func(t *testing.T) []grpc.ServerOption { return withAuth(t, get) },
			allow:      authntest.Allowlist{Anonymous: []string{get}},
			want:       []string{"anonymous " + get + ": OK without a token but Unauthenticated with a malformed one"},
		},
		{
			name:       "no interceptor at all",
			serverOpts: func(*testing.T) []grpc.ServerOption { return nil },
			want: []string{
				create + " without a token", create + " with a malformed token",
				get + " without a token", get + " with a malformed token",
				upload + " without a token", upload + " with a malformed token",
				watch + " without a token", watch + " with a malformed token",
			},
		},
		{
			name:       "server allows more than the test expects",
			serverOpts: func(t *testing.T) []grpc.ServerOption { return withAuth(t, get, watch) },
			want:       []string{get + " without a token", watch + " without a token"},
		},
		{
			name:       "stream interceptor forgotten",
			serverOpts: func(t *testing.T) []grpc.ServerOption { return withAuth(t)[:1] },
			want: []string{
				upload + " without a token", upload + " with a malformed token",
				watch + " without a token", watch + " with a malformed token",
			},
		},
		{
			name:       "dead allowlist entry",
			serverOpts: func(t *testing.T) []grpc.ServerOption { return withAuth(t) },
			allow:      authntest.Allowlist{Public: []string{"/auth.Auth/Login"}, Anonymous: []string{"/grpc.health.v1.Health/"}},
			want:       []string{`"/auth.Auth/Login" matches no registered method`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, srv := serve(t, tt.serverOpts(t)...)
			rec := &recorder{TB: t}
			authntest.CheckAllMethodsProtected(rec, conn, srv.GetServiceInfo(), tt.allow)
			if len(rec.errors) != len(tt.want) {
				t.Fatalf("reports:\n%s\nwant %d reports", strings.Join(rec.errors, "\n"), len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(rec.errors[i], w) {
					t.Errorf("report %d = %q, want it to mention %q", i, rec.errors[i], w)
				}
			}
		})
	}
}

func TestSignerTokens(t *testing.T) {
	s := authntest.NewSigner(t)
	v := s.Verifier(t)
	ctx := context.Background()
	c, err := v.Verify(ctx, s.Token(t, "u-1", authntest.Roles("admin")))
	if err != nil || c.Subject != "u-1" || !c.HasRole("admin") {
		t.Fatalf("valid token: %+v, %v", c, err)
	}
	if time.Until(c.ExpiresAt) > authntest.DefaultLifetime || time.Until(c.ExpiresAt) < authntest.DefaultLifetime-time.Minute {
		t.Errorf("exp = %v", c.ExpiresAt)
	}
	if _, err := v.Verify(ctx, s.Token(t, "u", authntest.ExpiresIn(-time.Hour))); !errors.Is(err, authn.ErrExpired) {
		t.Errorf("expired token: %v", err)
	}
	if _, err := v.Verify(ctx, s.Token(t, "u", authntest.Audience("other"))); !errors.Is(err, authn.ErrInvalidToken) {
		t.Errorf("wrong-audience token: %v", err)
	}
}

// TestTamperSignature: whatever the signature, the tampered token is still
// well-formed base64url and fails on its signature, never as malformed.
// The bit-flip it replaces failed this way in a few runs out of a hundred.
func TestTamperSignature(t *testing.T) {
	s := authntest.NewSigner(t)
	v := s.Verifier(t)
	for i := range 300 { // 300 random Ed25519 signatures: each of 64 characters occurs at the middle position
		tok := s.Token(t, fmt.Sprintf("u-%d", i))
		bad := authntest.TamperSignature(tok)
		sig := bad[strings.LastIndexByte(bad, '.')+1:]
		if bad == tok || strings.Trim(sig, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("TamperSignature(%s) = %s: unchanged or not base64url", tok, bad)
		}
		if _, err := v.Verify(context.Background(), bad); !errors.Is(err, authn.ErrInvalidToken) || !strings.Contains(err.Error(), "signature") {
			t.Fatalf("tampered token %d: %v, want a signature failure", i, err)
		}
	}
}
