package user

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gatehouse-dev/gatehouse/services/internal/identity"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authz"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/ratelimit"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/rpcerr"
)

// FieldViolation names one bad request field and why.
type FieldViolation struct {
	Field       string
	Description string
}

// ValidationError carries the problems found in a request, so a client
// fixes them in one round trip: the first rpcerr.MaxViolations of them, and
// how many more there were.
type ValidationError struct {
	Violations []FieldViolation
	Omitted    int // violations found beyond those kept
}

func (e *ValidationError) Error() string {
	if len(e.Violations) == 0 {
		return "invalid request"
	}
	return "invalid " + e.Violations[0].Field + ": " + e.Violations[0].Description
}

// add records a violation; checks call it so they can run to completion.
// Past rpcerr.MaxViolations it only counts, so a hostile request cannot
// make the answer (or the memory behind it) grow with its size.
func (e *ValidationError) add(field, desc string) {
	if len(e.Violations) >= rpcerr.MaxViolations {
		e.Omitted++
		return
	}
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
	if st, ok := authz.CallerStatus(err); ok {
		return st
	}
	var (
		verr       *ValidationError
		limited    *ratelimit.LimitedError
		overloaded *OverloadedError
	)
	switch {
	case errors.As(err, &verr):
		violations := make([]rpcerr.Violation, 0, len(verr.Violations))
		for _, v := range verr.Violations {
			violations = append(violations, rpcerr.Violation{Field: v.Field, Description: v.Description})
		}
		return rpcerr.BadRequestOmitting(verr.Error(), verr.Omitted, violations...)
	case errors.Is(err, ErrInvalidPageToken):
		return badRequest("page_token", "malformed or tampered page token; start again with an empty page_token")
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, "user not found")
	case errors.Is(err, ErrEmailTaken):
		return status.Error(codes.AlreadyExists, "email already registered")
	case errors.Is(err, ErrBadCredentials):
		return rpcerr.WithReason(codes.Unauthenticated, identity.ErrorDomain, identity.ReasonCredentialsInvalid, "invalid email or password")
	case errors.Is(err, ErrPermissionDenied):
		// The sentinel's wrappers say which rule refused; they are fixed
		// strings written for the client, never input.
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, ErrWrongPassword):
		return badRequest("current_password", "does not match the account's password")
	case errors.Is(err, ErrStale):
		return status.Error(codes.Aborted, "the user changed since its etag was read; read it again and retry")
	case errors.Is(err, ErrLastAdmin):
		return status.Error(codes.FailedPrecondition, "the last admin cannot be deleted or lose the admin role; make another admin first")
	case errors.As(err, &limited):
		return rpcerr.ResourceExhausted("too many attempts per "+limited.Limit+"; retry later", limited.RetryAfter)
	case errors.As(err, &overloaded):
		// The delay is the queue's drain time: clients told to come back
		// sooner would only meet the same full queue.
		return rpcerr.ResourceExhausted("server busy hashing passwords; retry with backoff", overloaded.RetryAfter)
	case errors.Is(err, ErrOverloaded):
		return rpcerr.ResourceExhausted("server busy hashing passwords; retry with backoff", time.Second)
	case errors.Is(err, ErrUnavailable):
		return status.Error(codes.Unavailable, "storage unavailable; retry later")
	default:
		return rpcerr.Fallback(err)
	}
}

func badRequest(field, desc string) error {
	return rpcerr.BadRequest("invalid "+field+": "+desc, rpcerr.Violation{Field: field, Description: desc})
}

// fail answers err through errorStatus, the one mapping, and logs the
// cause of what the answer hides (rpcerr.LogHidden).
func (s *Service) fail(ctx context.Context, err error) error {
	return rpcerr.LogHidden(ctx, s.log, s.sampled, err, errorStatus(err))
}
