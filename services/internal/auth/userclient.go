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
	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/rpcerr"
)

// UserClientRetryPolicy is the client-side service config Gatehouse uses
// to reach the User service, and the one users should copy: round-robin
// over every resolved address (a headless Service gives one per pod), and
// retries on UNAVAILABLE, which only happens before a server has begun
// processing a call (connection refused, or GOAWAY during a rollout), for
// the methods the Auth service calls: VerifyPassword and GetSessionState
// only read, and EndSessions repeated ends the same sessions.
const UserClientRetryPolicy = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [
      {"service": "user.v1.UserService", "method": "VerifyPassword"},
      {"service": "user.v1.UserService", "method": "GetSessionState"},
      {"service": "user.v1.UserService", "method": "EndSessions"}
    ],
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

// Users is what the Auth service asks the User service, which owns users:
// whether credentials are right (Login), who a session's user is now
// (every refresh), and to end a user's sessions (RevokeAllSessions). The
// dependency is one-way: the User service never calls the Auth service.
type Users interface {
	// VerifyPassword returns the account whose credentials these are, or
	// ErrBadCredentials.
	VerifyPassword(ctx context.Context, email, password string) (Account, error)
	// SessionState returns the account as it is now, or ErrUserNotFound.
	SessionState(ctx context.Context, userID string) (Account, error)
	// EndSessions moves the user's session version on and returns the new
	// one, or ErrUserNotFound.
	EndSessions(ctx context.Context, userID string) (int64, error)
}

// GRPCUsers calls user.v1.UserService with the Auth service's own token.
type GRPCUsers struct {
	client userv1.UserServiceClient
}

// NewGRPCUsers wraps a connection to the User service.
func NewGRPCUsers(conn grpc.ClientConnInterface) *GRPCUsers {
	return &GRPCUsers{client: userv1.NewUserServiceClient(conn)}
}

// VerifyPassword maps the User service's answer to domain errors: wrong
// credentials stay ErrBadCredentials, anything that says "try later"
// becomes ErrUnavailable, never Internal.
func (g *GRPCUsers) VerifyPassword(ctx context.Context, email, password string) (Account, error) {
	resp, err := g.client.VerifyPassword(ctx, &userv1.VerifyPasswordRequest{Email: email, Password: password})
	switch status.Code(err) {
	case codes.OK:
		return accountOf(resp.GetUser(), resp.GetSessionVersion()), nil
	case codes.Unauthenticated, codes.InvalidArgument, codes.NotFound:
		if reason := authn.RejectionReason(err); reason != "" {
			return Account{}, serviceTokenRefused(reason)
		}
		return Account{}, ErrBadCredentials
	case codes.ResourceExhausted:
		// The User service's hashing budget is full: pass its retry delay
		// on, instead of turning "busy, retry in a second" into an outage.
		delay, _ := rpcerr.RetryDelay(err)
		return Account{}, &OverloadedError{RetryAfter: delay}
	default:
		return Account{}, unavailable(ctx, err)
	}
}

// SessionState asks for the user as it is now.
func (g *GRPCUsers) SessionState(ctx context.Context, userID string) (Account, error) {
	resp, err := g.client.GetSessionState(ctx, &userv1.GetSessionStateRequest{Id: userID})
	switch status.Code(err) {
	case codes.OK:
		return accountOf(resp.GetUser(), resp.GetSessionVersion()), nil
	case codes.NotFound:
		return Account{}, ErrUserNotFound
	default:
		return Account{}, callFailed(ctx, err)
	}
}

// EndSessions asks the User service to end the user's sessions.
func (g *GRPCUsers) EndSessions(ctx context.Context, userID string) (int64, error) {
	resp, err := g.client.EndSessions(ctx, &userv1.EndSessionsRequest{Id: userID})
	switch status.Code(err) {
	case codes.OK:
		return resp.GetSessionVersion(), nil
	case codes.NotFound:
		return 0, ErrUserNotFound
	default:
		return 0, callFailed(ctx, err)
	}
}

func accountOf(u *userv1.User, sessionVersion int64) Account {
	return Account{ID: u.GetId(), Roles: u.GetRoles(), SessionVersion: sessionVersion}
}

// callFailed maps an answer of the User service that is none of the
// call's own results: a refusal of our service token, or "try later".
func callFailed(ctx context.Context, err error) error {
	if status.Code(err) == codes.Unauthenticated {
		if reason := authn.RejectionReason(err); reason != "" {
			return serviceTokenRefused(reason)
		}
	}
	return unavailable(ctx, err)
}

// serviceTokenRefused: the User service refused our own service token,
// not the user's credentials, which it never checked: its keys and ours
// disagree (a key replaced while its JWKS cache holds the old one).
// Saying "invalid email or password" would send the user to reset a
// password that is fine.
func serviceTokenRefused(reason string) error {
	return fmt.Errorf("%w: user service refused the Auth service's token (%s): are its verification keys behind this service's signing keys?", ErrUnavailable, reason)
}

// unavailable: anything else says "try later", unless our own caller has
// gone, which is its doing: then the context's error, so the call ends as
// Canceled or DeadlineExceeded and is counted as the client's result.
// PermissionDenied means our service token is not accepted (keys not yet
// propagated, wrong audience): a configuration problem the operator must
// see, and the client may retry.
func unavailable(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("user service call ended with the caller: %w", ctx.Err())
	}
	return fmt.Errorf("%w: user service answered %s: %s", ErrUnavailable, status.Code(err), status.Convert(err).Message())
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
		tok, err := c.issuer.IssueService(c.audience, c.ttl)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "cannot mint service token: %v", err)
		}
		c.token = tok
	}
	return map[string]string{"authorization": "Bearer " + c.token.Token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials. With
// TLS configured the connection is mutual TLS (the User service checks
// this service's certificate as well as the token); plaintext remains for
// local development on loopback.
func (c *ServiceCredentials) RequireTransportSecurity() bool { return false }
