// Package healthprobe is the `healthcheck` subcommand of both binaries: it
// asks gRPC servers for their grpc.health.v1 status and succeeds only if
// every one answers SERVING. The images have no shell and no other
// binary, so Docker's HEALTHCHECK and the chart's `helm test` pod run
//
//	/user healthcheck [-service NAME] [-timeout 3s] ADDR [ADDR...]
package healthprobe

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Command is the subcommand name the binaries dispatch on.
const Command = "healthcheck"

// Run checks every address given in args (after the subcommand) and
// reports each status on out.
func Run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	service := fs.String("service", "", `health service name ("" is the whole server)`)
	timeout := fs.Duration("timeout", 3*time.Second, "per-address timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: healthcheck [-service NAME] [-timeout 3s] ADDR [ADDR...]")
	}
	var errs []error
	for _, addr := range fs.Args() {
		st, err := check(addr, *service, *timeout)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		fmt.Fprintf(out, "%s %s\n", addr, st)
		if st != healthpb.HealthCheckResponse_SERVING {
			errs = append(errs, fmt.Errorf("%s: %s", addr, st))
		}
	}
	return errors.Join(errs...)
}

func check(addr, service string, timeout time.Duration) (healthpb.HealthCheckResponse_ServingStatus, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return 0, err
	}
	return resp.GetStatus(), nil
}
