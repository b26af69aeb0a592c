package healthprobe

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/tlsfiles"
)

// Command is the subcommand name the binaries dispatch on.
const Command = "healthcheck"

// Run checks every address given in args (after the subcommand) and
// reports each status on out.
func Run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	service := fs.String("service", "", `health service name ("" is the whole server)`)
	timeout := fs.Duration("timeout", 3*time.Second, "per-address timeout")
	cacert := fs.String("cacert", "", "speak TLS, trusting the CAs in this PEM file")
	cert := fs.String("cert", "", "client certificate (PEM) to present over TLS")
	key := fs.String("key", "", "private key of -cert (PEM)")
	serverName := fs.String("servername", "", "name to verify the server's certificate against (default: the host of ADDR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: healthcheck [-service NAME] [-timeout 3s] [-cacert CA.pem [-cert C.pem -key K.pem] [-servername NAME]] ADDR [ADDR...]")
	}
	creds := insecure.NewCredentials()
	if *cacert != "" {
		f, err := tlsfiles.Open(tlsfiles.Config{CertFile: *cert, KeyFile: *key, CAFile: *cacert, ClientAuth: tlsfiles.ClientAuthNone, ReloadInterval: time.Hour})
		if err != nil {
			return err
		}
		defer f.Close()
		creds = f.ClientCredentials()
	} else if *cert != "" || *key != "" || *serverName != "" {
		return errors.New("-cert, -key and -servername need -cacert")
	}
	var errs []error
	for _, addr := range fs.Args() {
		st, err := check(addr, *service, *timeout, creds, *serverName)
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

func check(addr, service string, timeout time.Duration, creds credentials.TransportCredentials, serverName string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if serverName != "" {
		opts = append(opts, grpc.WithAuthority(serverName))
	}
	conn, err := grpc.NewClient(addr, opts...)
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
