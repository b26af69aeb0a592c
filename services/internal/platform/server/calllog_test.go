package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func TestCallLoggerLevelsAndFields(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		logLevel  slog.Level
		err       error
		wantLevel string // "" for no line
		wantError string
	}{
		{"success is debug, hidden at info", "/user.v1.UserService/GetUser", slog.LevelInfo, nil, "", ""},
		{"success shown at debug", "/user.v1.UserService/GetUser", slog.LevelDebug, nil, "DEBUG", ""},
		{"client mistake is info", "/user.v1.UserService/GetUser", slog.LevelInfo, status.Error(codes.NotFound, "user not found"), "INFO", "user not found"},
		{"overload is a warning", "/auth.v1.AuthService/Login", slog.LevelInfo, status.Error(codes.ResourceExhausted, "busy"), "WARN", "busy"},
		{"bug is an error", "/auth.v1.AuthService/Login", slog.LevelWarn, status.Error(codes.Internal, "internal error"), "ERROR", "internal error"},
		{"probes are never logged", "/grpc.health.v1.Health/Check", slog.LevelDebug, status.Error(codes.Internal, "x"), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := callLogger{log: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tt.logLevel}))}
			ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 4321}})
			resp, err := l.unary(ctx, "req", &grpc.UnaryServerInfo{FullMethod: tt.method}, func(context.Context, any) (any, error) {
				return "resp", tt.err
			})
			if resp != "resp" || err != tt.err { //nolint:errorlint // the very error must pass through
				t.Fatalf("unary returned (%v, %v), want the handler's (resp, %v)", resp, err, tt.err)
			}
			if tt.wantLevel == "" {
				if buf.Len() != 0 {
					t.Fatalf("logged %s, want nothing", buf.String())
				}
				return
			}
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("log line %q: %v", buf.String(), err)
			}
			service, method, _ := strings.Cut(tt.method[1:], "/")
			want := map[string]any{
				"level": tt.wantLevel, "msg": "finished call", "grpc.service": service, "grpc.method": method,
				"grpc.method_type": "unary", "grpc.code": status.Code(tt.err).String(), "peer.address": "10.0.0.7:4321",
			}
			for k, v := range want {
				if line[k] != v {
					t.Errorf("%s = %v, want %v (line %s)", k, line[k], v, buf.String())
				}
			}
			if got, _ := line["grpc.error"].(string); got != tt.wantError {
				t.Errorf("grpc.error = %q, want %q", got, tt.wantError)
			}
			if ms, ok := line["grpc.time_ms"].(float64); !ok || ms < 0 {
				t.Errorf("grpc.time_ms = %v, want a duration", line["grpc.time_ms"])
			}
		})
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeStream) Context() context.Context { return s.ctx }

func TestCallLoggerStreamKinds(t *testing.T) {
	tests := []struct {
		client, server bool
		want           string
	}{
		{false, true, "server_stream"},
		{true, false, "client_stream"},
		{true, true, "bidi_stream"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			var buf bytes.Buffer
			l := callLogger{log: slog.New(slog.NewJSONHandler(&buf, nil))}
			info := &grpc.StreamServerInfo{FullMethod: "/x.v1.S/Watch", IsClientStream: tt.client, IsServerStream: tt.server}
			err := l.stream(nil, fakeStream{ctx: context.Background()}, info, func(any, grpc.ServerStream) error {
				return status.Error(codes.Canceled, "gone")
			})
			if status.Code(err) != codes.Canceled {
				t.Fatalf("stream returned %v, want the handler's error", err)
			}
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("log line %q: %v", buf.String(), err)
			}
			if line["grpc.method_type"] != tt.want || line["grpc.code"] != "Canceled" {
				t.Errorf("line %s: want method_type %s and code Canceled", buf.String(), tt.want)
			}
		})
	}
}
