package rpcerr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBadRequest(t *testing.T) {
	err := BadRequest("invalid email: required", Violation{"email", "required"}, Violation{"password", "too short"})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || st.Message() != "invalid email: required" {
		t.Fatalf("status = %v", st)
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField()+": "+v.GetDescription())
			}
		}
	}
	if fmt.Sprint(fields) != "[email: required password: too short]" {
		t.Errorf("violations = %v", fields)
	}
}

func TestFallback(t *testing.T) {
	tests := []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{fmt.Errorf("query: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "deadline exceeded"},
		{fmt.Errorf("query: %w", context.Canceled), codes.Canceled, "request cancelled"},
		{errors.New(`pq: syntax error at or near "SELECT"`), codes.Internal, "internal error"},
	}
	for _, tt := range tests {
		st := status.Convert(Fallback(tt.err))
		if st.Code() != tt.code || st.Message() != tt.msg {
			t.Errorf("Fallback(%v) = %v %q, want %v %q", tt.err, st.Code(), st.Message(), tt.code, tt.msg)
		}
	}
}
