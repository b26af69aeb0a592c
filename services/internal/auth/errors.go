package auth

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/identity"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authz"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/ratelimit"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/rpcerr"
)

// fieldError is a bad request field; errorStatus attaches it as a
// BadRequest detail.
type fieldError struct {
	field, description string
}

func (e *fieldError) Error() string { return "invalid " + e.field + ": " + e.description }

// errorStatus is the one place that turns domain errors into gRPC statuses
// with messages safe for clients. Refresh failures share one message on
// purpose: telling "unknown" from "revoked" helps nobody but an attacker.
func errorStatus(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := authz.CallerStatus(err); ok {
		return st
	}
	var (
		ferr       *fieldError
		limited    *ratelimit.LimitedError
		overloaded *OverloadedError
	)
	switch {
	case errors.As(err, &ferr):
		return rpcerr.BadRequest(ferr.Error(), rpcerr.Violation{Field: ferr.field, Description: ferr.description})
	case errors.Is(err, ErrBadCredentials):
		return rpcerr.WithReason(codes.Unauthenticated, identity.ErrorDomain, identity.ReasonCredentialsInvalid, "invalid email or password")
	case errors.Is(err, ErrTokenJustRotated):
		return status.Error(codes.Aborted, "refresh token was just used by a concurrent request; use the newest refresh token")
	case errors.Is(err, ErrTokenNotFound), errors.Is(err, ErrTokenExpired), errors.Is(err, ErrTokenRevoked), errors.Is(err, ErrTokenReused),
		errors.Is(err, ErrSessionEnded):
		return rpcerr.WithReason(codes.Unauthenticated, identity.ErrorDomain, identity.ReasonRefreshTokenInvalid, "invalid or expired refresh token; log in again")
	case errors.Is(err, ErrInvalidToken) && errors.Is(err, authn.ErrExpired):
		// About the token ValidateToken was given, not the caller's own:
		// the service's domain, not the interceptor's.
		return rpcerr.WithReason(codes.Unauthenticated, identity.ErrorDomain, authn.ReasonTokenExpired, "access token expired")
	case errors.Is(err, ErrInvalidToken):
		return rpcerr.WithReason(codes.Unauthenticated, identity.ErrorDomain, authn.ReasonTokenInvalid, "invalid access token")
	case errors.Is(err, ErrUserNotFound):
		// Only RevokeAllSessions can get here for a user other than the
		// caller, and only an admin may name another user.
		return status.Error(codes.NotFound, "user not found")
	case errors.As(err, &overloaded):
		return rpcerr.ResourceExhausted("the service is busy checking passwords; retry later", overloaded.RetryAfter)
	case errors.As(err, &limited):
		return rpcerr.ResourceExhausted("too many failed login attempts per "+limited.Limit+"; retry later", limited.RetryAfter)
	case errors.Is(err, ErrUnavailable):
		return status.Error(codes.Unavailable, "a dependency is unavailable; retry later")
	default:
		return rpcerr.Fallback(err)
	}
}

// fail answers err through errorStatus, the one mapping, and logs the
// cause of what the answer hides (rpcerr.LogHidden).
func (s *Service) fail(ctx context.Context, err error) error {
	return rpcerr.LogHidden(ctx, s.log, s.sampled, err, errorStatus(err))
}
