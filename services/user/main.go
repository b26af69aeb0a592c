// Command user runs the Gatehouse User service. Configuration comes from
// environment variables; see the README's configuration table.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/healthprobe"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/server"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/telemetry"
	"github.com/gatehouse-dev/gatehouse/services/internal/user/app"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == healthprobe.Command {
		if err := healthprobe.Run(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "healthcheck:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(context.Background(), os.Environ(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "user:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, environ []string, stdout io.Writer) error {
	cfg, err := app.LoadConfig(environ)
	if err != nil {
		return err
	}
	log := telemetry.NewLogger(stdout, cfg.LogLevel, app.ServiceName)
	a, err := app.New(ctx, cfg, app.Options{Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := server.SignalContext(ctx, a.Server.ForceStop)
	defer stop()
	return a.Run(ctx)
}
