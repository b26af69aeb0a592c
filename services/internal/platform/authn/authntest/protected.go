package authntest

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// callTimeout bounds each probe call: a method that is unprotected and
// blocks (a stream waiting for input) must fail the check, not hang it.
const callTimeout = 5 * time.Second

// CheckAllMethodsProtected calls every method registered on a server and
// reports, through t, each one that does not enforce authentication. It is
// the test DESIGN.md §3 asks for: it walks what is actually registered, so a
// new method cannot slip through because someone forgot the allowlist.
//
//   - services is the server's registry: srv.GetServiceInfo().
//   - conn is a client connected to that server (bufconn is fine).
//   - public lists what the server's Interceptor lets through, in the same
//     form: full method names ("/user.v1.UserService/CreateUser", use the
//     generated *_FullMethodName constants) and service prefixes ending in
//     "/" ("/grpc.health.v1.Health/"), so the caller can pass the same list
//     it gave authn.NewInterceptor. A full method name that matches no
//     registered method is reported too: it is dead, probably a typo, and a
//     typo is exactly how ardanlabs/service ended up with unprotected
//     methods. Service prefixes may match nothing (reflection may be off).
//
// Checks made, with an empty request message (all fields unset):
//
//  1. every non-public method, unary and streaming, called without a token
//     fails with codes.Unauthenticated;
//  2. every method, public ones included, called with a malformed bearer
//     token fails with codes.Unauthenticated. For public methods this shows
//     the interceptor is installed and verifies tokens there too.
//
// Handlers are never reached when the server is correctly protected, so the
// empty requests have no side effects in that case.
func CheckAllMethodsProtected(t testing.TB, conn grpc.ClientConnInterface, services map[string]grpc.ServiceInfo, public ...string) {
	t.Helper()
	if len(services) == 0 {
		t.Errorf("authntest: no services registered; nothing to check")
		return
	}
	isPublic := func(method string) bool {
		for _, p := range public {
			if method == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(method, p)) {
				return true
			}
		}
		return false
	}

	methods, streams := RegisteredMethods(services)

	for _, p := range public {
		// Service prefixes may legitimately match nothing (reflection turned
		// off in tests); a full method name that matches nothing is a typo.
		if !strings.HasSuffix(p, "/") && !slices.Contains(methods, p) {
			t.Errorf("authntest: public method %q matches no registered method", p)
		}
	}

	for _, method := range methods {
		info := streams[method]
		if !isPublic(method) {
			if code := probe(conn, method, info, ""); code != codes.Unauthenticated {
				t.Errorf("authntest: %s without a token: got %v, want Unauthenticated (method is not protected)", method, code)
			}
		}
		if code := probe(conn, method, info, "not-a-jwt"); code != codes.Unauthenticated {
			t.Errorf("authntest: %s with a malformed token: got %v, want Unauthenticated", method, code)
		}
	}
}

// RegisteredMethods lists the full names ("/pkg.Service/Method") of every
// method in a server's registry (srv.GetServiceInfo()), sorted, with each
// one's MethodInfo: what the walkers of this package and authztest call.
func RegisteredMethods(services map[string]grpc.ServiceInfo) ([]string, map[string]grpc.MethodInfo) {
	var methods []string
	infos := map[string]grpc.MethodInfo{}
	for svc, info := range services {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			methods = append(methods, full)
			infos[full] = m
		}
	}
	slices.Sort(methods)
	return methods, infos
}

// probe calls method once and returns the resulting status code.
func probe(conn grpc.ClientConnInterface, method string, info grpc.MethodInfo, token string) codes.Code {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if token != "" {
		ctx = BearerContext(ctx, token)
	}
	// An empty message encodes to zero bytes, which every proto request
	// type decodes as "all fields unset", so one type serves every method.
	if !info.IsClientStream && !info.IsServerStream {
		return status.Code(conn.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{}))
	}
	desc := &grpc.StreamDesc{StreamName: method, ClientStreams: info.IsClientStream, ServerStreams: info.IsServerStream}
	stream, err := conn.NewStream(ctx, desc, method)
	if err != nil {
		return status.Code(err)
	}
	_ = stream.SendMsg(&emptypb.Empty{}) // may fail if the server already answered; RecvMsg has the status
	_ = stream.CloseSend()
	for {
		if err := stream.RecvMsg(&emptypb.Empty{}); err != nil {
			if errors.Is(err, io.EOF) {
				return codes.OK // the handler ran and ended the stream normally
			}
			return status.Code(err)
		}
	}
}
