package rpcerr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/telemetry"
)

// Violation is one bad request field and why it is bad.
type Violation struct {
	Field       string
	Description string
}

// MaxViolations is the most field violations one error carries. A request
// with a million bad items must not buy a million-line answer: the status
// travels in a trailer, where megabytes break HTTP/2 header compression
// and with it every call multiplexed on the connection.
const MaxViolations = 5

// BadRequest is InvalidArgument with msg and the violations as a
// BadRequest detail, so a client (and grpcurl) can point at each field.
// Beyond MaxViolations, the rest is summed up in one last violation ("and
// N more"); omitted counts violations the caller already left out.
func BadRequest(msg string, violations ...Violation) error {
	return BadRequestOmitting(msg, 0, violations...)
}

// BadRequestOmitting is BadRequest for a caller that stopped collecting
// violations after some: omitted more were found and not kept.
func BadRequestOmitting(msg string, omitted int, violations ...Violation) error {
	if len(violations) > MaxViolations {
		omitted += len(violations) - MaxViolations
		violations = violations[:MaxViolations]
	}
	st := status.New(codes.InvalidArgument, msg)
	br := &errdetails.BadRequest{}
	for _, v := range violations {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
	}
	if omitted > 0 {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Description: fmt.Sprintf("and %d more violations", omitted),
		})
	}
	if withDetails, err := st.WithDetails(br); err == nil {
		st = withDetails
	}
	return st.Err()
}

// WithReason is a status of code with msg and a google.rpc.ErrorInfo of
// domain and reason: what a client decides on, without parsing messages.
func WithReason(code codes.Code, domain, reason, msg string) error {
	st := status.New(code, msg)
	if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Domain: domain, Reason: reason}); err == nil {
		st = withInfo
	}
	return st.Err()
}

// Reason returns the domain and reason of err's google.rpc.ErrorInfo, or
// two empty strings.
func Reason(err error) (domain, reason string) {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetDomain(), info.GetReason()
		}
	}
	return "", ""
}

// ResourceExhausted is ResourceExhausted with msg and a
// google.rpc.RetryInfo saying when to try again, so a client backs off by
// the server's measure instead of guessing (grpcurl prints it).
func ResourceExhausted(msg string, retryAfter time.Duration) error {
	st := status.New(codes.ResourceExhausted, msg)
	if retryAfter < time.Second {
		retryAfter = time.Second
	}
	// Whole seconds, rounded up: a client that comes back when told must
	// not come back before the room is there.
	retryAfter = (retryAfter + time.Second - 1).Truncate(time.Second)
	if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter)}); err == nil {
		st = withInfo
	}
	return st.Err()
}

// RetryDelay returns the RetryInfo delay of err, and false if it has none.
func RetryDelay(err error) (time.Duration, bool) {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
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

// LogHidden returns st, the status a service's error mapping chose for
// cause, after logging cause where st hides it: Internal and Unavailable
// tell the client nothing of why, so the operator must find it in the log,
// once, here. An outage fails every call the same way, so its lines go
// through sampled (with a count of those left out); an Internal is a bug
// and always written.
func LogHidden(ctx context.Context, log *slog.Logger, sampled *telemetry.Sampler, cause, st error) error {
	switch status.Code(st) {
	case codes.Internal, codes.Unknown, codes.DataLoss:
		log.ErrorContext(ctx, "request failed", "error", cause)
	case codes.Unavailable:
		sampled.Log(ctx, log, slog.LevelWarn, "unavailable", "request failed: a dependency is unavailable", "error", cause)
	}
	return st
}
