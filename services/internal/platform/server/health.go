package server

import (
	"context"
	"sync"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// watchLimitedHealth is the standard health server whose Watch streams can
// all be ended at shutdown.
type watchLimitedHealth struct {
	*health.Server
	watches *watchRegistry
}

func (h *watchLimitedHealth) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, done := h.watches.add(stream.Context())
	defer done()
	return h.Server.Watch(req, watchStream{stream, ctx})
}

type watchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (w watchStream) Context() context.Context { return w.ctx }

type watchRegistry struct {
	mu     sync.Mutex
	next   int
	cancel map[int]context.CancelFunc
	ended  bool
}

func newWatchRegistry() *watchRegistry {
	return &watchRegistry{cancel: map[int]context.CancelFunc{}}
}

func (r *watchRegistry) add(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		cancel()
		return ctx, func() {}
	}
	id := r.next
	r.next++
	r.cancel[id] = cancel
	return ctx, func() {
		r.mu.Lock()
		delete(r.cancel, id)
		r.mu.Unlock()
		cancel()
	}
}

func (r *watchRegistry) endAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = true
	for _, c := range r.cancel {
		c()
	}
}
