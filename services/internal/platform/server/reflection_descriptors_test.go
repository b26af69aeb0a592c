package server

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/gatehouse-dev/gatehouse/services/api/apidesc"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
)

// The platform imports no domain; this test does, only to serve a real
// contract with the descriptors a service passes in Options.Descriptors.

// serveUserService serves an unimplemented user.v1.UserService on a
// loopback port with o, and returns a connection to it.
func serveUserService(t *testing.T, o Options) *grpc.ClientConn {
	t.Helper()
	cfg := testConfig()
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := New(cfg, o)
	userv1.RegisterUserServiceServer(srv.GRPC, userv1.UnimplementedUserServiceServer{})
	ls, err := cfg.Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ls) }()
	conn, err := grpc.NewClient(ls.GRPC.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		srv.ForceStop()
		<-done
		_ = conn.Close()
	})
	return conn
}

// fileContainingSymbol asks reflection, as grpcurl describe does, for the
// file declaring symbol and its imports, and builds them into a registry.
func fileContainingSymbol(t *testing.T, conn *grpc.ClientConn, symbol string) *protoregistry.Files {
	t.Helper()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stream.CloseSend() }()
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if e := resp.GetErrorResponse(); e != nil {
		t.Fatalf("reflection: %s: %s", symbol, e.GetErrorMessage())
	}
	set := &descriptorpb.FileDescriptorSet{}
	for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
		fdp := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(b, fdp); err != nil {
			t.Fatal(err)
		}
		set.File = append(set.File, fdp)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		t.Fatalf("reflection: %s: the files sent do not build: %v", symbol, err)
	}
	return files
}

func leadingComment(t *testing.T, files *protoregistry.Files, name protoreflect.FullName) string {
	t.Helper()
	d, err := files.FindDescriptorByName(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return strings.TrimSpace(d.ParentFile().SourceLocations().ByDescriptor(d).LeadingComments)
}

func TestReflectionServesDescriptorComments(t *testing.T) {
	conn := serveUserService(t, Options{Descriptors: apidesc.Files()})

	files := fileContainingSymbol(t, conn, "user.v1.UserService.GetUser")
	if c := leadingComment(t, files, "user.v1.UserService.GetUser"); !strings.Contains(c, "GetUser") || !strings.Contains(c, "Errors:") {
		t.Errorf("GetUser's comment over reflection = %q, want the contract's, with its errors", c)
	}
	if c := leadingComment(t, files, "user.v1.User.etag"); c == "" {
		t.Error("User.etag has no comment over reflection")
	}

	// What the contracts lack still resolves, from the global registry:
	// health (probes, grpcurl), reflection itself, well-known types.
	for _, symbol := range []string{
		"grpc.health.v1.Health",
		"grpc.reflection.v1.ServerReflection",
		"google.protobuf.Empty",
		"google.protobuf.Duration", // imported by neither contract
	} {
		files := fileContainingSymbol(t, conn, symbol)
		if _, err := files.FindDescriptorByName(protoreflect.FullName(symbol)); err != nil {
			t.Errorf("%s: %v", symbol, err)
		}
	}
}

// Without Descriptors, reflection serves the generated code's descriptors,
// as before: the contract resolves, without its comments.
func TestReflectionWithoutDescriptors(t *testing.T) {
	conn := serveUserService(t, Options{})
	files := fileContainingSymbol(t, conn, "user.v1.UserService.GetUser")
	if c := leadingComment(t, files, "user.v1.UserService.GetUser"); c != "" {
		t.Errorf("GetUser's comment without Descriptors = %q; the generated descriptors were expected to carry none", c)
	}
}
