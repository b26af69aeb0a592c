package server

import (
	"context"
	"io"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/healthprobe"
)

// Process is a wired service, ready to run until its context ends.
type Process interface {
	Run(ctx context.Context) error
	// ForceStop ends a graceful shutdown at once (the second signal).
	ForceStop()
}

// Builder reads a service's configuration from environ and wires it,
// logging to stdout.
type Builder func(ctx context.Context, environ []string, stdout io.Writer) (Process, error)

// RunProcess is everything a binary's main does besides exiting: with the
// argument `healthcheck` it is the gRPC health client the images use (they
// have no shell); otherwise it tunes the garbage collector (tuneGC) and
// the soft memory limit (tuneMemory, from the container's cgroup), builds
// the service, serves until SIGINT or SIGTERM, shuts down gracefully (a second signal stops at once) and
// returns nil after a clean stop.
func RunProcess(ctx context.Context, args, environ []string, stdout io.Writer, build Builder) error {
	if len(args) > 1 && args[1] == healthprobe.Command {
		return healthprobe.Run(args[2:], stdout)
	}
	tuneGC(environ)
	_, from := tuneMemory(environ, memlimit.FromCgroup)
	memoryLimitFrom.Store(&from)
	p, err := build(ctx, environ, stdout)
	if err != nil {
		return err
	}
	ctx, stop := SignalContext(ctx, p.ForceStop)
	defer stop()
	return p.Run(ctx)
}
