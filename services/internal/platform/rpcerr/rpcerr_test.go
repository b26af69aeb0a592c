package rpcerr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/telemetry"
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

// TestBadRequestIsBounded: however many violations a caller passes, the
// answer carries MaxViolations and one summary, and stays small.
func TestBadRequestIsBounded(t *testing.T) {
	many := make([]Violation, 100000)
	for i := range many {
		many[i] = Violation{"roles", `unknown role "x"; assignable roles: admin`}
	}
	err := BadRequestOmitting("invalid roles", 7, many...)
	st := status.Convert(err)
	var got []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				got = append(got, v.GetDescription())
			}
		}
	}
	if len(got) != MaxViolations+1 || got[MaxViolations] != "and 100002 more violations" {
		t.Fatalf("violations = %d, last %q", len(got), got[len(got)-1])
	}
	if size := proto.Size(st.Proto()); size > 1024 {
		t.Errorf("status of 100000 violations is %d bytes", size)
	}
}

func TestResourceExhaustedSaysWhenToRetry(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		0: time.Second, 1500 * time.Millisecond: 2 * time.Second, 2100 * time.Millisecond: 3 * time.Second, time.Minute: time.Minute,
	} {
		err := ResourceExhausted("too many attempts", in)
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("code = %v", status.Code(err))
		}
		if got, ok := RetryDelay(err); !ok || got != want {
			t.Errorf("RetryDelay(%v) = %v, %v; want %v", in, got, ok, want)
		}
	}
	if _, ok := RetryDelay(errors.New("plain")); ok {
		t.Error("RetryDelay of a plain error")
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

// TestLogHidden: the cause behind an Internal or Unavailable is logged,
// the one behind an answer that says it all is not, and the status is
// returned as given.
func TestLogHidden(t *testing.T) {
	for _, tt := range []struct {
		st     error
		logged bool
	}{
		{status.Error(codes.Internal, "internal error"), true},
		{status.Error(codes.Unavailable, "retry later"), true},
		{status.Error(codes.NotFound, "user not found"), false},
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&buf, nil))
		cause := errors.New("the cause: disk full")
		if got := LogHidden(context.Background(), log, telemetry.NewSampler(10, 10), cause, tt.st); !errors.Is(got, tt.st) {
			t.Errorf("%v: returned %v", tt.st, got)
		}
		if logged := strings.Contains(buf.String(), "disk full"); logged != tt.logged {
			t.Errorf("%v: cause logged = %v, want %v: %s", status.Code(tt.st), logged, tt.logged, buf.String())
		}
	}
}
