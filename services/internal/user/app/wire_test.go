package app

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
)

// rawCodec sends bytes as they are, so a test can put on the wire what no
// well-behaved client would.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error)      { return v.([]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error { *(v.(*[]byte)) = data; return nil }
func (rawCodec) Name() string                       { return "proto" }

// TestMalformedWireMessages: undecodable requests are refused with a clear
// status (never OK, never Unknown), nothing is stored, and the server keeps
// serving. Invalid UTF-8 in a string field is refused by the protobuf
// runtime before any handler runs, which grpc-go reports as Internal
// ("failed to unmarshal"): there is no hook to turn that into
// InvalidArgument.
func TestMalformedWireMessages(t *testing.T) {
	e := startApp(t)
	field := func(num byte, b []byte) []byte { return append([]byte{num<<3 | 2, byte(len(b))}, b...) }
	tests := map[string][]byte{
		"invalid UTF-8 email":    append(field(1, []byte{'a', 0xff, 0xfe, '@', 'x', '.', 'y'}), field(2, []byte("velvet anchor 42"))...),
		"truncated field":        {0x0a, 0x40, 'a', 'b'},
		"garbage":                {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"wrong wire type":        {0x0d, 0x01, 0x02, 0x03, 0x04},
		"huge length prefix":     {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"unknown fields only ok": field(15, []byte("ignored")),
	}
	for name, msg := range tests {
		t.Run(name, func(t *testing.T) {
			var out []byte
			err := e.conn.Invoke(context.Background(), userv1.UserService_CreateUser_FullMethodName, msg, &out, grpc.ForceCodec(rawCodec{}))
			code := status.Code(err)
			if name == "unknown fields only ok" {
				// Decodes fine (unknown fields are skipped); validation
				// then rejects the empty request.
				if code != codes.InvalidArgument {
					t.Fatalf("code = %v (%v), want InvalidArgument", code, err)
				}
				return
			}
			if code == codes.OK || code == codes.Unknown {
				t.Fatalf("code = %v (%v), want a clear refusal", code, err)
			}
		})
	}
	// Still serving, and nothing was written: the admin asking is the only
	// user.
	list, err := e.client.ListUsers(e.admin(), &userv1.ListUsersRequest{})
	if err != nil || len(list.GetUsers()) != 1 {
		t.Fatalf("after malformed input: users %v, err %v", list.GetUsers(), err)
	}
	e.signup("ok@example.com")
}
