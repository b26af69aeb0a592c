package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
)

type bare struct {
	userv1.UnimplementedUserServiceServer
	user *userv1.User
}

func (b *bare) GetUser(context.Context, *userv1.GetUserRequest) (*userv1.GetUserResponse, error) {
	return &userv1.GetUserResponse{User: b.user}, nil
}

func main() {
	addr := ":50060"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
	opts, err := serverOptions(os.Args[min(2, len(os.Args)):])
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
	now := timestamppb.New(time.Now())
	s := grpc.NewServer(opts...)
	userv1.RegisterUserServiceServer(s, &bare{user: &userv1.User{
		Id: "01900000-0000-7000-8000-000000000000", Email: "admin@example.com",
		DisplayName: "Administrator", Roles: []string{"admin"}, CreateTime: now, UpdateTime: now,
	}})
	healthpb.RegisterHealthServer(s, health.NewServer())
	if err := s.Serve(l); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}
