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
