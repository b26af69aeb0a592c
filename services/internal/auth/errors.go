package auth

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
	var ferr *fieldError
	switch {
	case errors.As(err, &ferr):
		st := status.New(codes.InvalidArgument, ferr.Error())
		if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: ferr.field, Description: ferr.description}}}); derr == nil {
			st = d
		}
		return st.Err()
	case errors.Is(err, ErrBadCredentials):
		return status.Error(codes.Unauthenticated, "invalid email or password")
	case errors.Is(err, ErrTokenJustRotated):
		return status.Error(codes.Aborted, "refresh token was just used by a concurrent request; use the newest refresh token")
	case errors.Is(err, ErrTokenNotFound), errors.Is(err, ErrTokenExpired), errors.Is(err, ErrTokenRevoked), errors.Is(err, ErrTokenReused):
		return status.Error(codes.Unauthenticated, "invalid or expired refresh token; log in again")
	case errors.Is(err, ErrInvalidToken):
		return status.Error(codes.Unauthenticated, "invalid access token")
	case errors.Is(err, ErrRateLimited):
		return status.Error(codes.ResourceExhausted, "too many login attempts; retry later")
	case errors.Is(err, ErrUnavailable):
		return status.Error(codes.Unavailable, "a dependency is unavailable; retry later")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	default:
		return status.Error(codes.Internal, "internal error")
	}
}
