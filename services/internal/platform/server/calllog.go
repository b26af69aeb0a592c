package server

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/telemetry"
)

// callLogger writes one "finished call" line per RPC, at a level that
// follows its status code (callLevel).
//
// It replaces go-grpc-middleware's logging interceptor, which builds and
// injects its fields before the call whether or not the line is written:
// on an authenticated GetUser that was a sixth of all bytes allocated
// (make bench's profile), for a line that at the default level is never
// written because OK calls log at debug. Here nothing is built until the
// outcome is known and the level enabled.
//
// Failed calls are sampled (telemetry.Sampler, per method and code): a
// client can fail calls as fast as it can send them, and the log must not
// grow with it. A line that follows held-back ones says how many in
// "suppressed"; the metrics count every call.
type callLogger struct {
	log     *slog.Logger
	sampler *telemetry.Sampler // nil: every line is written
}

func (l callLogger) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if isProbe(info.FullMethod) {
		return handler(ctx, req)
	}
	start := time.Now()
	resp, err := handler(ctx, req)
	l.finished(ctx, info.FullMethod, "unary", start, err)
	return resp, err
}

func (l callLogger) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if isProbe(info.FullMethod) {
		return handler(srv, ss)
	}
	start := time.Now()
	err := handler(srv, ss)
	kind := "server_stream"
	switch {
	case info.IsClientStream && info.IsServerStream:
		kind = "bidi_stream"
	case info.IsClientStream:
		kind = "client_stream"
	}
	l.finished(ss.Context(), info.FullMethod, kind, start, err)
	return err
}

func (l callLogger) finished(ctx context.Context, fullMethod, kind string, start time.Time, err error) {
	code := status.Code(err)
	level := callLevel(code)
	if !l.log.Enabled(ctx, level) {
		return
	}
	var suppressed uint64
	if code != codes.OK {
		var ok bool
		if ok, suppressed = l.sampler.Allow(fullMethod + " " + code.String()); !ok {
			return
		}
	}
	service, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	attrs := []slog.Attr{
		slog.String("grpc.service", service),
		slog.String("grpc.method", method),
		slog.String("grpc.method_type", kind),
		slog.String("grpc.code", code.String()),
		slog.Float64("grpc.time_ms", float64(time.Since(start).Microseconds())/1000),
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("peer.address", p.Addr.String()))
	}
	if err != nil {
		attrs = append(attrs, slog.String("grpc.error", status.Convert(err).Message()))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("suppressed", suppressed))
	}
	l.log.LogAttrs(ctx, level, "finished call", attrs...)
}

// callLevel is how loud a finished call is: successes are routine (debug),
// client mistakes are worth a line (info), overload and timeouts a warning,
// and bugs or lost data an error.
func callLevel(code codes.Code) slog.Level {
	switch code {
	case codes.OK:
		return slog.LevelDebug
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return slog.LevelError
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return slog.LevelWarn
	default:
		return slog.LevelInfo
	}
}
