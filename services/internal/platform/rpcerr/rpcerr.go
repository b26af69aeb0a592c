// Package rpcerr builds the gRPC statuses every service's error mapping
// shares: InvalidArgument with google.rpc.BadRequest field violations, and
// the fallback for errors no domain sentinel matched. Each service still has
// exactly one function that maps its own sentinels; this package is what
// those functions have in common.
package rpcerr

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Violation is one bad request field and why it is bad.
type Violation struct {
	Field       string
	Description string
}

// BadRequest is InvalidArgument with msg and every violation as a
// BadRequest detail, so a client (and grpcurl) can point at each field.
func BadRequest(msg string, violations ...Violation) error {
	st := status.New(codes.InvalidArgument, msg)
	br := &errdetails.BadRequest{}
	for _, v := range violations {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
	}
	if withDetails, err := st.WithDetails(br); err == nil {
		st = withDetails
	}
	return st.Err()
}

// Fallback maps an error that matched no domain sentinel: the caller's
// own deadline or cancellation keep their codes, anything else is
// Internal with a fixed message, so no driver text, SQL or stack reaches a
// client. It is never Unknown.
func Fallback(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	default:
		return status.Error(codes.Internal, "internal error")
	}
}
