package authn_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
)

// A hand-written service, so these tests need no generated code and no
// domain package: every handler answers with the caller's subject ("" when
// the call carried no token).
const (
	probeService      = "gatehouse.test.v1.ProbeService"
	probePublic       = "/" + probeService + "/Public"
	probePrivate      = "/" + probeService + "/Private"
	probePrivateBidi  = "/" + probeService + "/PrivateBidi"
	probePublicStream = "/" + probeService + "/PublicStream"
)

func subjectOf(ctx context.Context) *wrapperspb.StringValue {
	c, ok := authn.ClaimsFromContext(ctx)
	if !ok {
		return wrapperspb.String("")
	}
	return wrapperspb.String(c.Subject + "|" + strings.Join(c.Roles, ","))
}

func unaryHandler(fullMethod string) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := new(emptypb.Empty)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(ctx context.Context, _ any) (any, error) { return subjectOf(ctx), nil }
		if interceptor == nil {
			return h(ctx, in)
		}
		return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: fullMethod}, h)
	}
}

func streamHandler(_ any, stream grpc.ServerStream) error {
	// Read until the client closes, then answer once.
	for {
		if err := stream.RecvMsg(new(emptypb.Empty)); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
	}
	return stream.SendMsg(subjectOf(stream.Context()))
}

var probeServiceDesc = grpc.ServiceDesc{
	ServiceName: probeService,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Public", Handler: unaryHandler(probePublic)},
		{MethodName: "Private", Handler: unaryHandler(probePrivate)},
	},
	Streams: []grpc.StreamDesc{
		{StreamName: "PrivateBidi", Handler: streamHandler, ClientStreams: true, ServerStreams: true},
		{StreamName: "PublicStream", Handler: streamHandler, ClientStreams: true, ServerStreams: true},
	},
}

type probeImpl struct{}

// startServer runs a real gRPC server over bufconn with the interceptor
// installed as the services will install it.
func startServer(t *testing.T, v *authn.Verifier) (*grpc.ClientConn, *grpc.Server) {
	t.Helper()
	interceptor, err := authn.NewInterceptor(v, []string{probePublic, probePublicStream},
		authn.WithPublicServices(authn.PublicInfrastructureServices()...),
		authn.WithInterceptorLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(interceptor.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(interceptor.StreamServerInterceptor()),
	)
	srv.RegisterService(&probeServiceDesc, probeImpl{})
	healthpb.RegisterHealthServer(srv, health.NewServer())

	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
	})
	return conn, srv
}

func callUnary(ctx context.Context, conn *grpc.ClientConn, method string) (string, error) {
	out := new(wrapperspb.StringValue)
	err := conn.Invoke(ctx, method, &emptypb.Empty{}, out)
	return out.GetValue(), err
}

func callStream(ctx context.Context, conn *grpc.ClientConn, method string) (string, error) {
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, method)
	if err != nil {
		return "", err
	}
	_ = stream.SendMsg(&emptypb.Empty{})
	_ = stream.CloseSend()
	out := new(wrapperspb.StringValue)
	if err := stream.RecvMsg(out); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}

func TestInterceptor(t *testing.T) {
	signer := authntest.NewSigner(t)
	conn, _ := startServer(t, signer.Verifier(t))

	valid := signer.Token(t, "user-7", authntest.Roles("admin"))
	expired := signer.Token(t, "user-7", authntest.ExpiresIn(-time.Hour))
	forged := authntest.NewSigner(t).Token(t, "user-7") // same kid, another key
	wrongAud := signer.Token(t, "user-7", authntest.Audience("other"))

	type auth func(context.Context) context.Context
	none := func(ctx context.Context) context.Context { return ctx }
	header := func(values ...string) auth {
		return func(ctx context.Context) context.Context {
			for _, v := range values {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", v)
			}
			return ctx
		}
	}
	bearer := func(tok string) auth { return header("Bearer " + tok) }

	tests := []struct {
		name    string
		auth    auth
		code    codes.Code
		msg     string
		reason  string // ErrorInfo reason of a refusal
		subject string // on success
	}{
		{name: "valid token", auth: bearer(valid), code: codes.OK, subject: "user-7|admin"},
		{name: "scheme in lower case", auth: header("bearer " + valid), code: codes.OK, subject: "user-7|admin"},
		{name: "scheme in mixed case", auth: header("bEaReR " + valid), code: codes.OK, subject: "user-7|admin"},
		{name: "no token", auth: none, code: codes.Unauthenticated, msg: "missing bearer token", reason: authn.ReasonTokenMissing},
		{name: "empty bearer", auth: header("Bearer "), code: codes.Unauthenticated, msg: "missing bearer token", reason: authn.ReasonTokenMissing},
		{name: "basic scheme", auth: header("Basic dXNlcjpwYXNz"), code: codes.Unauthenticated, msg: "missing bearer token", reason: authn.ReasonTokenMissing},
		{name: "token without scheme", auth: header(valid), code: codes.Unauthenticated, msg: "missing bearer token", reason: authn.ReasonTokenMissing},
		{name: "expired token", auth: bearer(expired), code: codes.Unauthenticated, msg: "token expired", reason: authn.ReasonTokenExpired},
		{name: "forged token", auth: bearer(forged), code: codes.Unauthenticated, msg: "invalid token", reason: authn.ReasonTokenInvalid},
		{name: "wrong audience", auth: bearer(wrongAud), code: codes.Unauthenticated, msg: "invalid token", reason: authn.ReasonTokenInvalid},
		{name: "garbage token", auth: bearer("a.b.c"), code: codes.Unauthenticated, msg: "invalid token", reason: authn.ReasonTokenInvalid},
		{name: "two authorization values", auth: header("Bearer "+valid, "Bearer "+valid), code: codes.Unauthenticated, msg: "invalid authorization metadata", reason: authn.ReasonTokenInvalid},
	}
	calls := map[string]func(context.Context, *grpc.ClientConn, string) (string, error){
		"unary":  callUnary,
		"stream": callStream,
	}
	methods := map[string]string{"unary": probePrivate, "stream": probePrivateBidi}

	for _, tt := range tests {
		for kind, call := range calls {
			t.Run(tt.name+"/"+kind, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				got, err := call(tt.auth(ctx), conn, methods[kind])
				st := status.Convert(err)
				if st.Code() != tt.code {
					t.Fatalf("code = %v (%q), want %v", st.Code(), st.Message(), tt.code)
				}
				if tt.code == codes.OK && got != tt.subject {
					t.Errorf("handler saw %q, want %q", got, tt.subject)
				}
				if tt.msg != "" && st.Message() != tt.msg {
					t.Errorf("message = %q, want %q", st.Message(), tt.msg)
				}
				if got := authn.RejectionReason(err); got != tt.reason {
					t.Errorf("rejection reason = %q, want %q", got, tt.reason)
				}
				for _, tok := range []string{valid, expired, forged, wrongAud} {
					if strings.Contains(st.Message(), strings.Split(tok, ".")[1]) {
						t.Errorf("status message leaks the token: %q", st.Message())
					}
				}
			})
		}
	}
}

func TestInterceptorPublicMethods(t *testing.T) {
	signer := authntest.NewSigner(t)
	conn, _ := startServer(t, signer.Verifier(t))
	admin := signer.Token(t, "admin-1", authntest.Roles("admin"))
	expired := signer.Token(t, "admin-1", authntest.ExpiresIn(-time.Hour))

	for kind, tc := range map[string]struct {
		method string
		call   func(context.Context, *grpc.ClientConn, string) (string, error)
	}{
		"unary":  {probePublic, callUnary},
		"stream": {probePublicStream, callStream},
	} {
		t.Run(kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			// Anonymous callers get through, with no claims.
			if got, err := tc.call(ctx, conn, tc.method); err != nil || got != "" {
				t.Errorf("anonymous: %q, %v", got, err)
			}
			// A caller who sends a token is recognised.
			if got, err := tc.call(authntest.BearerContext(ctx, admin), conn, tc.method); err != nil || got != "admin-1|admin" {
				t.Errorf("with a token: %q, %v", got, err)
			}
			// A bad token is refused even here.
			for name, tok := range map[string]string{"expired": expired, "garbage": "garbage"} {
				if _, err := tc.call(authntest.BearerContext(ctx, tok), conn, tc.method); status.Code(err) != codes.Unauthenticated {
					t.Errorf("%s token on a public method: %v, want Unauthenticated", name, err)
				}
			}
		})
	}

	// Health answers probes, which carry no token.
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health check without a token: %v, %v", resp, err)
	}
}

func TestInterceptorKeysUnavailable(t *testing.T) {
	signer := authntest.NewSigner(t)
	v, err := authn.NewVerifier(unavailableKeySet{signer.KeySet(t)}, signer.Issuer, signer.Audience)
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := startServer(t, v)
	_, err = callUnary(authntest.BearerContext(context.Background(), signer.Token(t, "u")), conn, probePrivate)
	if status.Code(err) != codes.Unavailable || authn.RejectionReason(err) != authn.ReasonKeysUnavailable {
		t.Fatalf("err = %v (reason %q), want Unavailable with %s so the client retries", err, authn.RejectionReason(err), authn.ReasonKeysUnavailable)
	}
}

func TestInterceptorEveryMethodProtected(t *testing.T) {
	signer := authntest.NewSigner(t)
	conn, srv := startServer(t, signer.Verifier(t))
	// The same list the server's interceptor was given.
	authntest.CheckAllMethodsProtected(t, conn, srv.GetServiceInfo(), authntest.Allowlist{
		Public:    []string{probePublic, probePublicStream},
		Anonymous: authn.PublicInfrastructureServices(),
	})
}

func TestNewInterceptorRejectsMalformedAllowlist(t *testing.T) {
	v := authntest.NewSigner(t).Verifier(t)
	if _, err := authn.NewInterceptor(nil, nil); err == nil {
		t.Error("nil verifier accepted")
	}
	for _, m := range []string{"", "user.v1.UserService/CreateUser", "/user.v1.UserService", "/user.v1.UserService/", "//CreateUser", "/a/b/c"} {
		if _, err := authn.NewInterceptor(v, []string{m}); err == nil {
			t.Errorf("public method %q accepted", m)
		}
	}
	for _, p := range []string{"grpc.health.v1.Health/", "/grpc.health.v1.Health", "/", "/a/b/"} {
		if _, err := authn.NewInterceptor(v, nil, authn.WithPublicServices(p)); err == nil {
			t.Errorf("public service %q accepted", p)
		}
	}
	i, err := authn.NewInterceptor(v, []string{probePublic}, authn.WithPublicServices(authn.PublicInfrastructureServices()...))
	if err != nil {
		t.Fatal(err)
	}
	for m, want := range map[string]bool{
		probePublic: true, probePrivate: false, probePublic + "X": false,
		"/grpc.health.v1.Health/Check": true, "/grpc.health.v1.Health/Watch": true,
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      true,
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": true,
		"/grpc.health.v1.HealthX/Check":                                  false,
	} {
		if got := i.IsPublic(m); got != want {
			t.Errorf("IsPublic(%q) = %v, want %v", m, got, want)
		}
	}
}

func TestClaimsContext(t *testing.T) {
	if c, ok := authn.ClaimsFromContext(context.Background()); ok || c != nil {
		t.Errorf("empty context: %v, %v", c, ok)
	}
	if _, ok := authn.ClaimsFromContext(authn.ContextWithClaims(context.Background(), nil)); ok {
		t.Error("nil claims reported as present")
	}
	want := &authn.Claims{Subject: "s", Roles: []string{"service"}}
	got, ok := authn.ClaimsFromContext(authn.ContextWithClaims(context.Background(), want))
	if !ok || got != want || !got.HasRole("service") {
		t.Errorf("round trip: %v, %v", got, ok)
	}
	var none *authn.Claims
	if none.HasRole("admin") {
		t.Error("nil claims have a role")
	}
}
