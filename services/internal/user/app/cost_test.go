package app

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
)

// argon2 counts the argon2id computations the service has run so far,
// over both hashing budgets, from its own metric.
func (e *env) argon2() float64 {
	e.t.Helper()
	fams, err := e.app.Metrics.Registry.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	total, found := 0.0, false
	for _, f := range fams {
		if f.GetName() != "gatehouse_password_hashes_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			total, found = total+m.GetCounter().GetValue(), true
		}
	}
	if !found {
		e.t.Fatal("no gatehouse_password_hashes_total series")
	}
	return total
}

// TestRequestCostIsBounded sends each method the largest hostile request
// that fits in a message (1 MiB): a million roles, update_mask paths, or a
// megabyte where a short string belongs. None may cost more than two
// argon2id computations or answer with more than 4 KiB of status. Before,
// an admin's CreateUser with 100,000 roles answered 5.2 MB of field
// violations, and a user's UpdateUser with 100,000 unknown paths 8.4 MB.
func TestRequestCostIsBounded(t *testing.T) {
	e := startApp(t)
	alice := e.signup("alice@example.com")
	other := e.signup("other@example.com")
	many := func(s string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	mask := func(p ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: p} }
	big := strings.Repeat("x", 1<<20-1024)
	tests := []struct {
		name   string
		call   func(ctx context.Context, opts ...grpc.CallOption) error
		hashes float64
	}{
		{"CreateUser, admin, 200k roles", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := e.client.CreateUser(e.admin(), &userv1.CreateUserRequest{Email: "r@example.com", Password: "velvet anchor 42", Roles: many("x", 200_000)}, o...)
			return err
		}, 0},
		{"CreateUser, anonymous, 200k roles", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := e.client.CreateUser(ctx, &userv1.CreateUserRequest{Email: "r@example.com", Password: "velvet anchor 42", Roles: many("admin", 200_000)}, o...)
			return err
		}, 0},
		{"CreateUser, 1 MiB email", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := e.client.CreateUser(ctx, &userv1.CreateUserRequest{Email: big, Password: "velvet anchor 42", DisplayName: "x"}, o...)
			return err
		}, 0},
		{"CreateUser, accepted", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := e.client.CreateUser(ctx, &userv1.CreateUserRequest{Email: "ok@example.com", Password: strings.Repeat("velvet anchor 42 ", 8)[:128], DisplayName: strings.Repeat("n", 100)}, o...)
			return err
		}, 1},
		{"UpdateUser, 200k unknown paths", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := e.client.UpdateUser(e.as(alice.GetId()), &userv1.UpdateUserRequest{Id: alice.GetId(), UpdateMask: mask(many("nope", 200_000)...)}, o...)
			return err
		}, 0},
		{"UpdateUser, admin, 200k password paths", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := e.client.UpdateUser(e.admin(), &userv1.UpdateUserRequest{Id: other.GetId(), Password: "new passphrase", UpdateMask: mask(many("password", 200_000)...)}, o...)
			return err
		}, 0},
		{"UpdateUser, admin, password twice", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := e.client.UpdateUser(e.admin(), &userv1.UpdateUserRequest{Id: other.GetId(), Password: "new passphrase", UpdateMask: mask("password", "password")}, o...)
			return err
		}, 0},
		{"UpdateUser, admin, every path, accepted", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := e.client.UpdateUser(e.admin(), &userv1.UpdateUserRequest{Id: other.GetId(), Email: "other2@example.com", DisplayName: "O", Password: "new passphrase", Roles: []string{"admin"},
				UpdateMask: mask("email", "display_name", "password", "roles")}, o...)
			return err
		}, 1},
		{"ChangePassword, accepted", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := e.client.ChangePassword(e.as(alice.GetId()), &userv1.ChangePasswordRequest{Id: alice.GetId(), CurrentPassword: "correct horse battery", NewPassword: strings.Repeat("quartz lamp 7 ", 10)[:128]}, o...)
			return err
		}, 2},
		{"ChangePassword, 1 MiB current password", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := e.client.ChangePassword(e.as(other.GetId()), &userv1.ChangePasswordRequest{Id: other.GetId(), CurrentPassword: big, NewPassword: "whatever123"}, o...)
			return err
		}, 0},
		{"VerifyPassword, 1 MiB password", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := e.client.VerifyPassword(e.service(), &userv1.VerifyPasswordRequest{Email: "alice@example.com", Password: big}, o...)
			return err
		}, 0},
		{"ListUsers, 1 MiB page token", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := e.client.ListUsers(e.admin(), &userv1.ListUsersRequest{PageToken: big}, o...)
			return err
		}, 0},
		{"GetUser, 1 MiB id", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := e.client.GetUser(e.admin(), &userv1.GetUserRequest{Id: big}, o...)
			return err
		}, 0},
		{"DeleteUser, 1 MiB etag", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := e.client.DeleteUser(e.admin(), &userv1.DeleteUserRequest{Id: alice.GetId(), Etag: big}, o...)
			return err
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.argon2()
			err := tt.call(context.Background(), grpc.MaxCallRecvMsgSize(64<<20))
			if got := e.argon2() - before; got != tt.hashes {
				t.Errorf("%v argon2id computations, want %v (%v)", got, tt.hashes, status.Code(err))
			}
			if err == nil {
				return
			}
			if code := status.Code(err); code == codes.Internal || code == codes.Unknown || code == codes.Unavailable {
				t.Errorf("code %v: hostile input must get a client error", code)
			}
			if size := proto.Size(status.Convert(err).Proto()); size > 4096 {
				t.Errorf("status of %d bytes, want at most 4 KiB: %v", size, status.Code(err))
			}
		})
	}
}
