package user

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FieldViolation names one bad request field and why.
type FieldViolation struct {
	Field       string
	Description string
}

// ValidationError carries every problem found in a request, so a client
// fixes them all in one round trip.
type ValidationError struct {
	Violations []FieldViolation
}

func (e *ValidationError) Error() string {
	if len(e.Violations) == 0 {
		return "invalid request"
	}
	return "invalid " + e.Violations[0].Field + ": " + e.Violations[0].Description
}

// add records a violation; checks call it so they can run to completion.
func (e *ValidationError) add(field, desc string) {
	e.Violations = append(e.Violations, FieldViolation{Field: field, Description: desc})
}

// orNil returns e as an error only if it holds violations.
func (e *ValidationError) orNil() error {
	if len(e.Violations) == 0 {
		return nil
	}
	return e
}

// errorStatus is the one place that turns domain errors into gRPC statuses.
// Messages are fixed strings safe for clients: no SQL, no stack, no input
// echoed back beyond field names.
func errorStatus(err error) error {
	if err == nil {
		return nil
	}
	var verr *ValidationError
	switch {
	case errors.As(err, &verr):
		st := status.New(codes.InvalidArgument, verr.Error())
		br := &errdetails.BadRequest{}
		for _, v := range verr.Violations {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
		}
		if withDetails, derr := st.WithDetails(br); derr == nil {
			st = withDetails
		}
		return st.Err()
	case errors.Is(err, ErrInvalidPageToken):
		return badRequest("page_token", "malformed or tampered page token; start again with an empty page_token")
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, "user not found")
	case errors.Is(err, ErrEmailTaken):
		return status.Error(codes.AlreadyExists, "email already registered")
	case errors.Is(err, ErrBadCredentials):
		return status.Error(codes.Unauthenticated, "invalid email or password")
	case errors.Is(err, ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, "authentication required")
	case errors.Is(err, ErrPermissionDenied):
		return status.Error(codes.PermissionDenied, "permission denied")
	case errors.Is(err, ErrOverloaded):
		return status.Error(codes.ResourceExhausted, "server busy hashing passwords; retry with backoff")
	case errors.Is(err, ErrUnavailable):
		return status.Error(codes.Unavailable, "storage unavailable; retry later")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	default:
		return status.Error(codes.Internal, "internal error")
	}
}

func badRequest(field, desc string) error {
	return errorStatus(&ValidationError{Violations: []FieldViolation{{Field: field, Description: desc}}})
}
