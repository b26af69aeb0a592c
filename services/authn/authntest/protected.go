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

	"github.com/gatehouse-dev/gatehouse/services/authn"
)

// callTimeout bounds each probe call: a method that is unprotected and
// blocks (a stream waiting for input) must fail the check, not hang it.
const callTimeout = 5 * time.Second

// Allowlist is what a server's authn.Interceptor lets through without a
// token, in the form the interceptor was given: full method names
// ("/user.v1.UserService/CreateUser"; use the generated *_FullMethodName
// constants) and, in Anonymous, service prefixes ending in "/"
// ("/grpc.health.v1.Health/").
type Allowlist struct {
	// Public methods take a token optionally and verify one when sent.
	Public []string
	// Anonymous methods and services never read the token
	// (authn.WithAnonymousMethods, authn.WithPublicServices).
	Anonymous []string
}

func (a Allowlist) has(list []string, method string) bool {
	for _, p := range list {
		if method == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(method, p)) {
			return true
		}
	}
	return false
}

// CheckAllMethodsProtected calls every method registered on a server and
// reports, through t, each one that does not enforce authentication as
// allow declares. It walks what is actually registered, so a new method
// cannot slip through because someone forgot the allowlist.
//
//   - services is the server's registry: srv.GetServiceInfo().
//   - conn is a client connected to that server (bufconn is fine).
//   - allow lists what the server lets through. A full method name in it
//     that matches no registered method is reported too: it is dead,
//     probably a typo, and a typo is how a method ends up unprotected.
//     Service prefixes may match nothing (reflection may be off).
//
// Checks made, with an empty request message (all fields unset):
//
//  1. every method neither public nor anonymous, unary and streaming,
//     called without a token fails with codes.Unauthenticated;
//  2. every non-anonymous method, public ones included, called with a
//     malformed bearer token fails with codes.Unauthenticated: the
//     interceptor is installed and verifies tokens there too;
//  3. every anonymous method answers a malformed token exactly as it
//     answers no token (the header is not read), and no token is not
//     refused as a missing token.
//
// Handlers are never reached for checks 1 and 2 when the server is
// correctly protected. Check 3 reaches anonymous handlers with an empty
// request, which a well-behaved handler refuses as invalid.
func CheckAllMethodsProtected(t testing.TB, conn grpc.ClientConnInterface, services map[string]grpc.ServiceInfo, allow Allowlist) {
	t.Helper()
	if len(services) == 0 {
		t.Errorf("authntest: no services registered; nothing to check")
		return
	}
	methods, streams := RegisteredMethods(services)
	for _, p := range slices.Concat(allow.Public, allow.Anonymous) {
		// Service prefixes may legitimately match nothing (reflection turned
		// off in tests); a full method name that matches nothing is a typo.
		if !strings.HasSuffix(p, "/") && !slices.Contains(methods, p) {
			t.Errorf("authntest: allowlisted method %q matches no registered method", p)
		}
	}
	for _, method := range methods {
		info := streams[method]
		if allow.has(allow.Anonymous, method) {
			err := call(conn, method, info, "", anonymousTimeout)
			if authn.RejectionReason(err) == authn.ReasonTokenMissing {
				t.Errorf("authntest: anonymous %s without a token: refused for want of one (%v)", method, err)
			}
			without, with := settled(status.Code(err)), settled(probe(conn, method, info, "not-a-jwt", anonymousTimeout))
			if without != with {
				t.Errorf("authntest: anonymous %s: %v without a token but %v with a malformed one; the token must not be read", method, without, with)
			}
			continue
		}
		if !allow.has(allow.Public, method) {
			if code := probe(conn, method, info, "", callTimeout); code != codes.Unauthenticated {
				t.Errorf("authntest: %s without a token: got %v, want Unauthenticated (method is not protected)", method, code)
			}
		}
		if code := probe(conn, method, info, "not-a-jwt", callTimeout); code != codes.Unauthenticated {
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

// anonymousTimeout bounds a probe of an anonymous method, whose handler
// runs: a stream such as Health/Watch answers only when the probe gives up.
const anonymousTimeout = time.Second

// settled folds the two ways a probe can give up on a handler that did not
// answer (the deadline, or the cancel that races it) into one.
func settled(c codes.Code) codes.Code {
	if c == codes.Canceled {
		return codes.DeadlineExceeded
	}
	return c
}

// probe calls method once and returns the resulting status code.
func probe(conn grpc.ClientConnInterface, method string, info grpc.MethodInfo, token string, timeout time.Duration) codes.Code {
	return status.Code(call(conn, method, info, token, timeout))
}

// call calls method once with an empty request and returns its error (nil
// when the handler answered OK or ended its stream normally).
func call(conn grpc.ClientConnInterface, method string, info grpc.MethodInfo, token string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if token != "" {
		ctx = BearerContext(ctx, token)
	}
	// An empty message encodes to zero bytes, which every proto request
	// type decodes as "all fields unset", so one type serves every method.
	if !info.IsClientStream && !info.IsServerStream {
		return conn.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{})
	}
	desc := &grpc.StreamDesc{StreamName: method, ClientStreams: info.IsClientStream, ServerStreams: info.IsServerStream}
	stream, err := conn.NewStream(ctx, desc, method)
	if err != nil {
		return err
	}
	_ = stream.SendMsg(&emptypb.Empty{}) // may fail if the server already answered; RecvMsg has the status
	_ = stream.CloseSend()
	for {
		if err := stream.RecvMsg(&emptypb.Empty{}); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // the handler ran and ended the stream normally
			}
			return err
		}
	}
}
