package authztest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authz"
)

const callTimeout = 5 * time.Second

// Caller is a plain user, with no admin role, as the walker acts: ctx
// carries its valid bearer token, ID is its user id, and Other is the id
// of another user that exists.
type Caller struct {
	Ctx   context.Context
	ID    string
	Other string
}

// CheckPolicy walks every method registered on a server (services is
// srv.GetServiceInfo(), conn a client of it) and reports through t:
//
//  1. every registered method without a declared access in policy, and
//     every declared method that is not registered (a typo);
//  2. every unary method whose request names a user (a string field id or
//     user_id, see authz.TargetField) that does not answer
//     PermissionDenied when the plain user calls it with Other's id,
//     whatever access the method declares: no method, public ones
//     included, may let a user act on another;
//  3. every Admin or Service method that does not answer PermissionDenied
//     to the plain user, with its own id as the target too.
//
// Requests are otherwise empty. A correctly protected server refuses them
// all in its interceptor, so no handler runs and nothing changes.
func CheckPolicy(t testing.TB, conn grpc.ClientConnInterface, services map[string]grpc.ServiceInfo, policy authz.Policy, plain Caller) {
	t.Helper()
	if len(services) == 0 {
		t.Errorf("authztest: no services registered; nothing to check")
		return
	}
	methods, infos := authntest.RegisteredMethods(services)
	for m := range policy.Methods {
		if !slices.Contains(methods, m) {
			t.Errorf("authztest: policy declares %s, which is not registered", m)
		}
	}
	for _, method := range methods {
		access, ok := policy.Access(method)
		if !ok {
			t.Errorf("authztest: %s has no declared access: add it to the policy", method)
			continue
		}
		info := infos[method]
		if info.IsClientStream || info.IsServerStream {
			if access != authz.Public && access != authz.Anonymous {
				t.Errorf("authztest: streaming %s is %s; only public and anonymous streams can be walked", method, access)
			}
			continue
		}
		input, err := inputOf(method)
		if err != nil {
			// Reflection's own descriptors, say: public infrastructure.
			if access != authz.Public && access != authz.Anonymous {
				t.Errorf("authztest: %s: %v", method, err)
			}
			continue
		}
		target := authz.TargetField(input)
		if target != nil {
			if code := call(conn, plain.Ctx, method, input, target, plain.Other); code != codes.PermissionDenied {
				t.Errorf("authztest: %s as a plain user on another user's %s: got %v, want PermissionDenied", method, target.Name(), code)
			}
		}
		if access == authz.Admin || access == authz.Service {
			if code := call(conn, plain.Ctx, method, input, target, plain.ID); code != codes.PermissionDenied {
				t.Errorf("authztest: %s (%s) as a plain user on itself: got %v, want PermissionDenied", method, access, code)
			}
		}
	}
}

func inputOf(fullMethod string) (protoreflect.MessageDescriptor, error) {
	svc, name, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, err
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, protoregistry.NotFound
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, protoregistry.NotFound
	}
	return md.Input(), nil
}

// call invokes method with a request whose target field (if any) is id.
func call(conn grpc.ClientConnInterface, ctx context.Context, method string, input protoreflect.MessageDescriptor, target protoreflect.FieldDescriptor, id string) codes.Code {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	req := dynamicpb.NewMessage(input)
	if target != nil {
		req.Set(target, protoreflect.ValueOfString(id))
	}
	return status.Code(conn.Invoke(ctx, method, req, &emptypb.Empty{}))
}
