package main

import (
	"cmp"
	"context"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	greeterv1 "github.com/gatehouse-dev/gatehouse/examples/greeter/api/greeter/v1"
	"github.com/gatehouse-dev/gatehouse/services/authn"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv); err != nil {
		log.Fatal(err)
	}
}

// run serves on GRPC_ADDR (default :50053) until ctx ends.
func run(ctx context.Context, getenv func(string) string) error {
	lis, err := new(net.ListenConfig).Listen(ctx, "tcp", cmp.Or(getenv("GRPC_ADDR"), ":50053"))
	if err != nil {
		return err
	}
	srv, err := newServer(ctx, getenv)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); srv.GracefulStop() }()
	return srv.Serve(lis)
}

// newServer verifies tokens of GATEHOUSE_ISSUER for GATEHOUSE_AUDIENCE
// (default gatehouse) until ctx ends. An https issuer with a private CA is
// trusted through SSL_CERT_FILE.
func newServer(ctx context.Context, getenv func(string) string) (*grpc.Server, error) {
	issuer := getenv("GATEHOUSE_ISSUER")
	keys, err := authn.NewIssuerKeySet(ctx, issuer, nil, slog.Default())
	if err != nil {
		return nil, err
	}
	verifier, err := authn.NewVerifier(keys, issuer, cmp.Or(getenv("GATEHOUSE_AUDIENCE"), "gatehouse"))
	if err != nil {
		return nil, err
	}
	// Every method needs a token; health and reflection never read one.
	authenticate, err := authn.NewInterceptor(verifier, nil, authn.WithPublicServices(authn.PublicInfrastructureServices()...))
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(authenticate.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(authenticate.StreamServerInterceptor()))
	greeterv1.RegisterGreeterServiceServer(srv, greeter{})
	reflection.Register(srv)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { // ready once it can verify
		if keys.Wait(ctx) == nil {
			hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		}
	}()
	return srv, nil
}

type greeter struct {
	greeterv1.UnimplementedGreeterServiceServer
}

// Hello reads the claims the interceptor verified: it never runs without.
func (greeter) Hello(ctx context.Context, _ *greeterv1.HelloRequest) (*greeterv1.HelloResponse, error) {
	c, _ := authn.ClaimsFromContext(ctx)
	return &greeterv1.HelloResponse{Message: "hello, " + c.Subject, Subject: c.Subject, Roles: c.Roles, ClientId: c.ClientID}, nil
}
