package main

import (
	"context"
	"fmt"
	"os"

	"github.com/gatehouse-dev/gatehouse/services/internal/auth/app"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/server"
)

func main() {
	if err := server.RunProcess(context.Background(), os.Args, os.Environ(), os.Stdout, app.Build); err != nil {
		fmt.Fprintln(os.Stderr, "auth:", err)
		os.Exit(1)
	}
}
