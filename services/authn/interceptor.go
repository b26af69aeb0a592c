package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Service prefixes of the standard gRPC services that must answer without
// a token: Kubernetes probes and grpcurl's reflection carry none, and a
// grpcurl given `-H "authorization: Bearer $TOKEN"` sends it to them too.
// Pass them to WithPublicServices (or use PublicInfrastructureServices).
const (
	HealthServicePrefix            = "/grpc.health.v1.Health/"
	ReflectionV1ServicePrefix      = "/grpc.reflection.v1.ServerReflection/"
	ReflectionV1AlphaServicePrefix = "/grpc.reflection.v1alpha.ServerReflection/"
	authorizationMetadataKey       = "authorization"
	bearerScheme                   = "bearer"
)

// PublicInfrastructureServices returns the health and reflection service
// prefixes, for WithPublicServices. A function rather than a variable so no
// caller can append to a shared slice.
func PublicInfrastructureServices() []string {
	return []string{HealthServicePrefix, ReflectionV1ServicePrefix, ReflectionV1AlphaServicePrefix}
}

// Interceptor enforces authentication on a gRPC server. It is fail-closed:
// a method is public only if it is listed, by the full method name of the
// generated code (e.g. userv1.UserService_CreateUser_FullMethodName), or its
// whole service is listed with WithPublicServices. Keying on the generated
// constants rather than hand-typed strings is deliberate: a hand-typed name
// that drifts from the real one silently unprotects (or here, at worst,
// protects) a method.
//
// Methods come in three kinds:
//
//   - protected (the default): a valid bearer token is required, and its
//     verified Claims are in the context;
//   - public (publicMethods): a token is optional, but if one is sent it
//     must be valid, and its claims are attached; so an admin calling a
//     public sign-up is recognised as an admin;
//   - anonymous (WithAnonymousMethods, and every method of the services of
//     WithPublicServices): the authorization header is not read at all.
//     For methods that authenticate by their own arguments (a login, a
//     refresh, a token check) and for infrastructure (health, reflection):
//     a client that attaches a stale token to every call can still log in,
//     and grpcurl with an expired `-H` token can still list services.
type Interceptor struct {
	verifier         *Verifier
	publicMethods    map[string]bool
	anonymousMethods map[string]bool
	publicServices   []string
	logger           *slog.Logger
}

type interceptorConfig struct {
	services  []string
	anonymous []string
	logger    *slog.Logger
}

// InterceptorOption configures NewInterceptor.
type InterceptorOption func(*interceptorConfig)

// WithPublicServices makes every method of the given services anonymous:
// callable without a token, which is not even read when sent. Each prefix
// must look like "/package.Service/" (leading and trailing slash), e.g.
// HealthServicePrefix.
func WithPublicServices(prefixes ...string) InterceptorOption {
	return func(c *interceptorConfig) { c.services = append(c.services, prefixes...) }
}

// WithAnonymousMethods names methods (full names, as for publicMethods)
// whose callers authenticate by the request itself: the authorization
// header is ignored, present or not, valid or not, and no Claims are
// attached.
func WithAnonymousMethods(fullMethods ...string) InterceptorOption {
	return func(c *interceptorConfig) { c.anonymous = append(c.anonymous, fullMethods...) }
}

// WithInterceptorLogger logs each rejection's reason at debug level. The
// reason is one of Verify's fixed strings; the token is never logged.
func WithInterceptorLogger(l *slog.Logger) InterceptorOption {
	return func(c *interceptorConfig) { c.logger = l }
}

// NewInterceptor returns an Interceptor that verifies tokens with v and lets
// the full method names in publicMethods through without one. Malformed
// names are an error, because a typo would leave the allowlist silently
// ineffective.
func NewInterceptor(v *Verifier, publicMethods []string, opts ...InterceptorOption) (*Interceptor, error) {
	if v == nil {
		return nil, errors.New("authn: NewInterceptor: nil verifier")
	}
	var cfg interceptorConfig
	for _, o := range opts {
		o(&cfg)
	}
	i := &Interceptor{verifier: v, publicMethods: make(map[string]bool, len(publicMethods)),
		anonymousMethods: make(map[string]bool, len(cfg.anonymous)), logger: cfg.logger}
	if i.logger == nil {
		i.logger = slog.New(slog.DiscardHandler)
	}
	for _, m := range publicMethods {
		if !validFullMethod(m) {
			return nil, fmt.Errorf("authn: public method %q: want \"/package.Service/Method\"", m)
		}
		i.publicMethods[m] = true
	}
	for _, m := range cfg.anonymous {
		if !validFullMethod(m) {
			return nil, fmt.Errorf("authn: anonymous method %q: want \"/package.Service/Method\"", m)
		}
		if i.publicMethods[m] {
			return nil, fmt.Errorf("authn: %s is both public and anonymous", m)
		}
		i.anonymousMethods[m] = true
	}
	for _, p := range cfg.services {
		if len(p) < 3 || p[0] != '/' || p[len(p)-1] != '/' || strings.Count(p, "/") != 2 {
			return nil, fmt.Errorf("authn: public service %q: want \"/package.Service/\"", p)
		}
		i.publicServices = append(i.publicServices, p)
	}
	return i, nil
}

func validFullMethod(m string) bool {
	svc, method, ok := strings.Cut(strings.TrimPrefix(m, "/"), "/")
	return strings.HasPrefix(m, "/") && ok && svc != "" && method != "" && !strings.Contains(method, "/")
}

// IsPublic reports whether fullMethod may be called without a token
// (public and anonymous methods).
func (i *Interceptor) IsPublic(fullMethod string) bool {
	return i.publicMethods[fullMethod] || i.IsAnonymous(fullMethod)
}

// IsAnonymous reports whether the interceptor ignores the token of
// fullMethod's callers.
func (i *Interceptor) IsAnonymous(fullMethod string) bool {
	if i.anonymousMethods[fullMethod] {
		return true
	}
	for _, p := range i.publicServices {
		if strings.HasPrefix(fullMethod, p) {
			return true
		}
	}
	return false
}

// UnaryServerInterceptor returns the unary half.
func (i *Interceptor) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := i.authenticate(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor returns the streaming half. Without it every
// streaming method would be open: a classic gap (go-kratos/kratos#2617).
func (i *Interceptor) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := i.authenticate(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		// The claims become visible through the stream's Context().
		wrapped := middleware.WrapServerStream(ss)
		wrapped.WrappedContext = ctx
		return handler(srv, wrapped)
	}
}

// authenticate returns ctx with claims attached, or a status error whose
// message is generic and never contains the token.
func (i *Interceptor) authenticate(ctx context.Context, fullMethod string) (context.Context, error) {
	if i.IsAnonymous(fullMethod) {
		return ctx, nil
	}
	public := i.publicMethods[fullMethod]
	values := metadata.ValueFromIncomingContext(ctx, authorizationMetadataKey)
	switch {
	case len(values) == 0 && public:
		return ctx, nil
	case len(values) == 0:
		return nil, i.reject(fullMethod, codes.Unauthenticated, ReasonTokenMissing, "missing bearer token", "no authorization metadata")
	case len(values) > 1:
		// Which one would a proxy or a logger have looked at? Refuse to guess.
		return nil, i.reject(fullMethod, codes.Unauthenticated, ReasonTokenInvalid, "invalid authorization metadata", "multiple authorization values")
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, bearerScheme) || token == "" {
		return nil, i.reject(fullMethod, codes.Unauthenticated, ReasonTokenMissing, "missing bearer token", "authorization is not a bearer token")
	}
	claims, err := i.verifier.Verify(ctx, token)
	switch {
	case err == nil:
		return ContextWithClaims(ctx, claims), nil
	case errors.Is(err, ErrExpired):
		return nil, i.reject(fullMethod, codes.Unauthenticated, ReasonTokenExpired, "token expired", err.Error())
	case errors.Is(err, ErrInvalidToken):
		return nil, i.reject(fullMethod, codes.Unauthenticated, ReasonTokenInvalid, "invalid token", err.Error())
	case errors.Is(err, ErrKeysUnavailable):
		return nil, i.reject(fullMethod, codes.Unavailable, ReasonKeysUnavailable, "authentication temporarily unavailable", err.Error())
	case ctx.Err() != nil:
		return nil, status.FromContextError(ctx.Err()).Err()
	default:
		return nil, i.reject(fullMethod, codes.Unauthenticated, ReasonTokenInvalid, "invalid token", err.Error())
	}
}

// ErrorDomain is the google.rpc.ErrorInfo domain of every refusal by the
// interceptor; its Reason is one of the Reason constants.
const ErrorDomain = "authn.gatehouse.dev"

// Reasons of the interceptor's refusals, in their google.rpc.ErrorInfo
// detail. They let a caller tell what to do without parsing messages: a
// user's client refreshes on TOKEN_EXPIRED and logs in again on
// TOKEN_INVALID; a service calling another knows that an Unauthenticated
// with one of these is about its own credentials, not about the request.
//
// ReasonSessionEnded is given by the authorization step (package authz),
// not by this interceptor: the token verified, but its user was deleted or
// its sessions were ended since it was issued; refreshing will not help,
// logging in again will.
const (
	ReasonTokenMissing    = "TOKEN_MISSING"
	ReasonTokenInvalid    = "TOKEN_INVALID"
	ReasonTokenExpired    = "TOKEN_EXPIRED"
	ReasonKeysUnavailable = "KEYS_UNAVAILABLE"
	ReasonSessionEnded    = "SESSION_ENDED"
)

// RejectionReason returns the reason an authn interceptor gave for
// refusing a call (one of the Reason constants), or "" when err is not
// such a refusal.
func RejectionReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorDomain {
			return info.GetReason()
		}
	}
	return ""
}

func (i *Interceptor) reject(method string, code codes.Code, reason, msg, detail string) error {
	i.logger.Debug("request not authenticated", "grpc.method", method, "grpc.code", code.String(), "reason", detail)
	return Refusal(code, reason, msg)
}

// Refusal is a status of code with msg and a google.rpc.ErrorInfo of
// reason in ErrorDomain: how the interceptor refuses a call, and how
// authorization (package authz) refuses one for a reason of this list.
func Refusal(code codes.Code, reason, msg string) error {
	st := status.New(code, msg)
	if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}); err == nil {
		st = withInfo
	}
	return st.Err()
}

type claimsKey struct{}

// ContextWithClaims returns ctx carrying c. The interceptor uses it; tests
// and in-process callers use it to call handlers directly.
func ContextWithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFromContext returns the verified claims of the caller, and false if
// the call carried no token (only possible on a public method).
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}
