// Command user runs the Gatehouse User service. Configuration comes from
// environment variables; see the README's configuration table.
// `user healthcheck ADDR...` is the gRPC health client the image uses.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/server"
	"github.com/gatehouse-dev/gatehouse/services/internal/user/app"
)

func main() {
	if err := server.RunProcess(context.Background(), os.Args, os.Environ(), os.Stdout, app.Build); err != nil {
		fmt.Fprintln(os.Stderr, "user:", err)
		os.Exit(1)
	}
}
