package auth

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authn"
)

// RoleService is the role of the Auth service's own tokens; the User
// service lets only it call VerifyPassword.
const RoleService = "service"

// ServiceSubject is the subject of the Auth service's own tokens.
const ServiceSubject = "service:gatehouse-auth"

// UserClientRetryPolicy is the client-side service config Gatehouse uses
// to reach the User service, and the one users should copy: round-robin
// over every resolved address (a headless Service gives one per pod), and
// retries on UNAVAILABLE, which only happens before a server has begun
// processing a call (connection refused, or GOAWAY during a rollout), for
// the idempotent VerifyPassword.
const UserClientRetryPolicy = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [{"service": "user.v1.UserService", "method": "VerifyPassword"}],
    "timeout": "5s",
    "retryPolicy": {
      "maxAttempts": 3,
      "initialBackoff": "0.05s",
      "maxBackoff": "0.5s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// UserVerifier checks credentials with the User service.
type UserVerifier interface {
	VerifyPassword(ctx context.Context, email, password string) (userID string, roles []string, err error)
}

// GRPCUserVerifier calls user.v1.UserService/VerifyPassword.
type GRPCUserVerifier struct {
	client userv1.UserServiceClient
}

// NewGRPCUserVerifier wraps a connection to the User service.
func NewGRPCUserVerifier(conn grpc.ClientConnInterface) *GRPCUserVerifier {
	return &GRPCUserVerifier{client: userv1.NewUserServiceClient(conn)}
}

// VerifyPassword maps the User service's answer to domain errors: wrong
// credentials stay ErrBadCredentials, anything that says "try later"
// becomes ErrUnavailable, never Internal.
func (v *GRPCUserVerifier) VerifyPassword(ctx context.Context, email, password string) (string, []string, error) {
	resp, err := v.client.VerifyPassword(ctx, &userv1.VerifyPasswordRequest{Email: email, Password: password})
	switch status.Code(err) {
	case codes.OK:
		return resp.GetUser().GetId(), resp.GetUser().GetRoles(), nil
	case codes.Unauthenticated, codes.InvalidArgument, codes.NotFound:
		if reason := authn.RejectionReason(err); reason != "" {
			// The User service refused our own service token, not the
			// user's credentials, which it never checked: its keys and
			// ours disagree (a key replaced while its JWKS cache holds the
			// old one). Saying "invalid email or password" would send the
			// user to reset a password that is fine.
			return "", nil, fmt.Errorf("%w: user service refused the Auth service's token (%s): are its verification keys behind this service's signing keys?", ErrUnavailable, reason)
		}
		return "", nil, ErrBadCredentials
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Canceled:
		return "", nil, fmt.Errorf("%w: user service: %s", ErrUnavailable, status.Code(err))
	default:
		// PermissionDenied means our service token is not accepted
		// (keys not yet propagated, wrong audience): a configuration
		// problem the operator must see, and the client may retry.
		return "", nil, fmt.Errorf("%w: user service answered %s: %s", ErrUnavailable, status.Code(err), status.Convert(err).Message())
	}
}

// ServiceCredentials attach a short-lived service token, minted by the
// Auth service for itself, to every call to the User service. The token is
// reused until a minute before it expires.
type ServiceCredentials struct {
	issuer   *Issuer
	audience string
	ttl      time.Duration

	mu    sync.Mutex
	token AccessToken
}

// NewServiceCredentials returns per-RPC credentials for the User service.
func NewServiceCredentials(issuer *Issuer, audience string, ttl time.Duration) *ServiceCredentials {
	return &ServiceCredentials{issuer: issuer, audience: audience, ttl: ttl}
}

var _ credentials.PerRPCCredentials = (*ServiceCredentials)(nil)

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c *ServiceCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Re-mint when close to expiry or when the active key changed, so a
	// key rotation reaches service tokens at once.
	if time.Until(c.token.ExpiresAt) < c.ttl/5 || c.token.KeyID != c.issuer.ActiveKeyID() {
		tok, err := c.issuer.Issue(ServiceSubject, []string{RoleService}, c.audience, c.ttl)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "cannot mint service token: %v", err)
		}
		c.token = tok
	}
	return map[string]string{"authorization": "Bearer " + c.token.Token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials. The
// connection is cluster-internal plaintext unless a mesh adds mTLS.
func (c *ServiceCredentials) RequireTransportSecurity() bool { return false }
