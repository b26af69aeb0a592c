package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/gatehouse-dev/gatehouse/services/authn"
)

// Access is who may call a method.
type Access int

// The access levels. Self and SelfOrAdmin compare the caller with the
// request's target: its `id` field, else its `user_id` field.
const (
	// Public: anyone, with or without a token. A token, if sent, is
	// resolved only when the handler asks for the Caller.
	Public Access = iota + 1
	// Self: a user acting on its own id; admins get no exception.
	Self
	// SelfOrAdmin: a user acting on its own id, or an admin on any.
	SelfOrAdmin
	// Admin: a caller holding the admin role now.
	Admin
	// Service: the platform's own service principal (Principal.Service).
	Service
	// Anonymous: anyone; a bearer token is not read at all, so a stale
	// one cannot make the call fail. For methods whose credentials travel
	// in the request (login, refresh) and for health and reflection.
	Anonymous
)

func (a Access) String() string {
	switch a {
	case Public:
		return "public"
	case Self:
		return "self"
	case SelfOrAdmin:
		return "self-or-admin"
	case Admin:
		return "admin"
	case Service:
		return "service"
	case Anonymous:
		return "anonymous"
	default:
		return fmt.Sprintf("Access(%d)", int(a))
	}
}

// needsTarget reports whether the access compares the caller with the
// request's target id.
func (a Access) needsTarget() bool { return a == Self || a == SelfOrAdmin }

// Policy declares the access of every method a server registers.
type Policy struct {
	// Methods maps full method names (use the generated *_FullMethodName
	// constants) to their access.
	Methods map[string]Access
	// PublicServices are service prefixes ("/grpc.health.v1.Health/")
	// whose every method is Anonymous: health and reflection.
	PublicServices []string
}

// Access returns the declared access of fullMethod, and false if it has
// none.
func (p Policy) Access(fullMethod string) (Access, bool) {
	if a, ok := p.Methods[fullMethod]; ok {
		return a, true
	}
	for _, prefix := range p.PublicServices {
		if strings.HasPrefix(fullMethod, prefix) {
			return Anonymous, true
		}
	}
	return 0, false
}

// PublicMethods lists the methods declared Public, sorted: what the authn
// interceptor lets through without a token, verifying one when sent.
// Deriving the interceptor's lists from the policy keeps one declaration
// per method.
func (p Policy) PublicMethods() []string { return p.methodsOf(Public) }

// AnonymousMethods lists the methods declared Anonymous, sorted: for
// authn.WithAnonymousMethods.
func (p Policy) AnonymousMethods() []string { return p.methodsOf(Anonymous) }

func (p Policy) methodsOf(access Access) []string {
	var out []string
	for m, a := range p.Methods {
		if a == access {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// Principal is the caller as the account is now.
type Principal struct {
	// ID is the user id, or the service principal's subject.
	ID string
	// Roles are the roles held now, not the token's.
	Roles []string
	// Service marks the platform's own service principal.
	Service bool
	// Account is what the Resolver read to decide (a user record, say),
	// for a handler that needs exactly that: a GetUser of oneself can
	// answer from it instead of reading the same row again. It is as fresh
	// as the decision.
	Account any
}

// HasRole reports whether p holds role now.
func (p Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// Resolver turns verified claims into the principal as it is now. It
// returns an error wrapping ErrSessionEnded when the token no longer
// stands for anyone (user deleted, sessions ended), ErrUnavailable when it
// cannot tell right now, or anything else for a failure to be logged and
// answered as Internal.
type Resolver func(ctx context.Context, claims *authn.Claims) (Principal, error)

// Errors a Resolver wraps, and that Caller returns.
var (
	// ErrSessionEnded: the token's user was deleted or its sessions ended.
	ErrSessionEnded = errors.New("session ended")
	// ErrUnavailable: the caller's state cannot be read now (database or
	// User service down).
	ErrUnavailable = errors.New("caller state unavailable")
	// ErrAnonymous: Caller on a call that carried no token.
	ErrAnonymous = errors.New("anonymous call")
)

// Interceptor enforces a Policy.
type Interceptor struct {
	policy    Policy
	resolve   Resolver
	adminRole string
	targets   map[string]protoreflect.FieldDescriptor // method → target field
	log       *slog.Logger
	// servicePeer, if set, must also accept the connection of a Service
	// call.
	servicePeer     func(ctx context.Context) bool
	servicePeerDesc string
}

// Option configures NewInterceptor.
type Option func(*Interceptor)

// WithLogger logs refusals at debug level and resolver failures (the cause
// behind an Internal answer) at error level.
func WithLogger(l *slog.Logger) Option { return func(i *Interceptor) { i.log = l } }

// WithServicePeer makes Service access need two proofs: the service
// principal's token, and a connection that peer accepts (a TLS client
// certificate naming the calling service, say). A bearer token can leak
// through a log or a proxy; the private key of a client certificate does
// not travel with the calls. desc says what peer wants, for the refusal.
func WithServicePeer(peer func(ctx context.Context) bool, desc string) Option {
	return func(i *Interceptor) { i.servicePeer, i.servicePeerDesc = peer, desc }
}

// NewInterceptor returns the interceptor enforcing policy. adminRole names
// the role that Admin and SelfOrAdmin accept. Every Self and SelfOrAdmin
// method must be unary and its request must have a string field `id` or
// `user_id` (looked up in the global proto registry), so a policy that
// cannot be enforced is an error at start, not a hole at run time.
func NewInterceptor(policy Policy, resolve Resolver, adminRole string, opts ...Option) (*Interceptor, error) {
	if resolve == nil || adminRole == "" {
		return nil, errors.New("authz: NewInterceptor: resolver and admin role are required")
	}
	i := &Interceptor{policy: policy, resolve: resolve, adminRole: adminRole, targets: map[string]protoreflect.FieldDescriptor{}}
	for _, o := range opts {
		o(i)
	}
	if i.log == nil {
		i.log = slog.New(slog.DiscardHandler)
	}
	for method, access := range policy.Methods {
		if access < Public || access > Anonymous {
			return nil, fmt.Errorf("authz: %s: unknown access %d", method, int(access))
		}
		md, err := methodDescriptor(method)
		if err != nil {
			return nil, err
		}
		if !access.needsTarget() {
			continue
		}
		if md.IsStreamingClient() || md.IsStreamingServer() {
			return nil, fmt.Errorf("authz: %s: %s needs a target id, which a stream does not have before the handler runs", method, access)
		}
		fd := TargetField(md.Input())
		if fd == nil {
			return nil, fmt.Errorf("authz: %s: %s needs a string field id or user_id in %s", method, access, md.Input().FullName())
		}
		i.targets[method] = fd
	}
	for _, p := range policy.PublicServices {
		if len(p) < 3 || p[0] != '/' || p[len(p)-1] != '/' || strings.Count(p, "/") != 2 {
			return nil, fmt.Errorf("authz: public service %q: want \"/package.Service/\"", p)
		}
	}
	return i, nil
}

// methodDescriptor finds "/pkg.Service/Method" in the global registry,
// where every generated service registers itself.
func methodDescriptor(fullMethod string) (protoreflect.MethodDescriptor, error) {
	svc, name, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !strings.HasPrefix(fullMethod, "/") || !ok || svc == "" || name == "" {
		return nil, fmt.Errorf("authz: method %q: want \"/package.Service/Method\"", fullMethod)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, fmt.Errorf("authz: method %q: service not registered: %w", fullMethod, err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("authz: method %q: %s is not a service", fullMethod, svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, fmt.Errorf("authz: method %q: no such method", fullMethod)
	}
	return md, nil
}

// TargetField is the field of a request that names the user a call acts
// on: `id`, else `user_id`; nil if the message has neither as a singular
// string.
func TargetField(msg protoreflect.MessageDescriptor) protoreflect.FieldDescriptor {
	for _, name := range []protoreflect.Name{"id", "user_id"} {
		fd := msg.Fields().ByName(name)
		if fd != nil && fd.Kind() == protoreflect.StringKind && fd.Cardinality() != protoreflect.Repeated {
			return fd
		}
	}
	return nil
}

// UnaryServerInterceptor returns the unary half. Install it after the
// authn interceptor.
func (i *Interceptor) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := i.authorize(ctx, info.FullMethod, req)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor returns the streaming half; streams have no
// target before the handler reads the first message, so only their
// method-level access applies (NewInterceptor refuses Self on streams).
func (i *Interceptor) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := i.authorize(ss.Context(), info.FullMethod, nil)
		if err != nil {
			return err
		}
		wrapped := middleware.WrapServerStream(ss)
		wrapped.WrappedContext = ctx
		return handler(srv, wrapped)
	}
}

func (i *Interceptor) authorize(ctx context.Context, method string, req any) (context.Context, error) {
	access, ok := i.policy.Access(method)
	if !ok {
		// Fail closed: a method nobody declared is nobody's.
		i.log.ErrorContext(ctx, "method has no authorization policy; refused", "grpc.method", method)
		return nil, status.Error(codes.PermissionDenied, "permission denied: method has no authorization policy")
	}
	if access == Anonymous {
		return ctx, nil
	}
	claims, authed := authn.ClaimsFromContext(ctx)
	if access == Public {
		if authed {
			c := &callerState{}
			c.resolve = func() (Principal, error) { return i.resolve(ctx, claims) }
			ctx = context.WithValue(ctx, callerKey{}, c)
		}
		return ctx, nil
	}
	if !authed {
		return nil, authn.Refusal(codes.Unauthenticated, authn.ReasonTokenMissing, "missing bearer token")
	}
	p, err := i.resolve(ctx, claims)
	if err != nil {
		return nil, i.resolveStatus(ctx, method, err)
	}
	if err := i.allowed(ctx, access, p, method, req); err != nil {
		i.log.DebugContext(ctx, "request not authorized", "grpc.method", method, "access", access.String(), "caller", p.ID)
		return nil, err
	}
	c := &callerState{p: p, done: true}
	return context.WithValue(ctx, callerKey{}, c), nil
}

func (i *Interceptor) allowed(ctx context.Context, access Access, p Principal, method string, req any) error {
	admin := !p.Service && p.HasRole(i.adminRole)
	switch access {
	case Service:
		if !p.Service {
			return status.Error(codes.PermissionDenied, "permission denied: only the Auth service may call this method")
		}
		if i.servicePeer != nil && !i.servicePeer(ctx) {
			i.log.WarnContext(ctx, "service token on a connection without the service's certificate; refused", "grpc.method", method)
			return status.Errorf(codes.PermissionDenied, "permission denied: the connection must present %s", i.servicePeerDesc)
		}
		return nil
	case Admin:
		if admin {
			return nil
		}
		return status.Errorf(codes.PermissionDenied, "permission denied: requires role %s", i.adminRole)
	case Self, SelfOrAdmin:
		if access == SelfOrAdmin && admin {
			return nil
		}
		if !p.Service && p.ID != "" && target(req, i.targets[method]) == p.ID {
			return nil
		}
		if access == Self {
			return status.Error(codes.PermissionDenied, "permission denied: a user may do this only for itself")
		}
		return status.Errorf(codes.PermissionDenied, "permission denied: a user may do this only for itself; role %s may for anyone", i.adminRole)
	}
	return status.Error(codes.PermissionDenied, "permission denied")
}

func target(req any, fd protoreflect.FieldDescriptor) string {
	m, ok := req.(proto.Message)
	if !ok || fd == nil {
		return ""
	}
	return m.ProtoReflect().Get(fd).String()
}

// resolveStatus answers a Resolver failure: ended sessions are
// Unauthenticated with reason SESSION_ENDED (log in again), unavailability
// is Unavailable (retry), anything else Internal, with its cause logged here
// because the client is told nothing.
func (i *Interceptor) resolveStatus(ctx context.Context, method string, err error) error {
	switch {
	case errors.Is(err, ErrSessionEnded):
		i.log.DebugContext(ctx, "request not authorized", "grpc.method", method, "reason", err.Error())
		return SessionEndedStatus()
	case errors.Is(err, ErrUnavailable):
		i.log.WarnContext(ctx, "cannot check the caller", "grpc.method", method, "error", err)
		return status.Error(codes.Unavailable, "cannot check the caller now; retry later")
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	default:
		i.log.ErrorContext(ctx, "resolving the caller failed", "grpc.method", method, "error", err)
		return status.Error(codes.Internal, "internal error")
	}
}

// SessionEndedStatus is the answer to a token whose user was deleted or
// whose sessions were ended: Unauthenticated with a google.rpc.ErrorInfo of
// reason authn.ReasonSessionEnded, so a client logs in again instead of
// refreshing.
func SessionEndedStatus() error {
	return authn.Refusal(codes.Unauthenticated, authn.ReasonSessionEnded, "session ended; log in again")
}

type callerKey struct{}

// callerState holds the resolved caller, or how to resolve it on first use
// (public methods called with a token).
type callerState struct {
	once    sync.Once
	resolve func() (Principal, error)
	done    bool
	p       Principal
	err     error
}

// Caller returns the caller as resolved for this call. On a public method
// the token is resolved here, at first use; without a token the error is
// ErrAnonymous. Other errors wrap ErrSessionEnded or ErrUnavailable, or are
// the resolver's own; map them with CallerStatus.
func Caller(ctx context.Context) (Principal, error) {
	c, ok := ctx.Value(callerKey{}).(*callerState)
	if !ok {
		return Principal{}, ErrAnonymous
	}
	if c.done {
		return c.p, nil
	}
	c.once.Do(func() { c.p, c.err = c.resolve() })
	return c.p, c.err
}

// CallerStatus maps an error from Caller to the status the interceptor
// would have answered, and false for errors that are not Caller's.
func CallerStatus(err error) (error, bool) {
	switch {
	case errors.Is(err, ErrSessionEnded):
		return SessionEndedStatus(), true
	case errors.Is(err, ErrUnavailable):
		return status.Error(codes.Unavailable, "cannot check the caller now; retry later"), true
	case errors.Is(err, ErrAnonymous):
		return authn.Refusal(codes.Unauthenticated, authn.ReasonTokenMissing, "missing bearer token"), true
	}
	return nil, false
}

// WithCaller returns ctx carrying p as the resolved caller, for tests and
// in-process callers that invoke handlers directly.
func WithCaller(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, callerKey{}, &callerState{p: p, done: true})
}
