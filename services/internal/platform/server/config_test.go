package server

import (
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/config"
)

func TestConfigValidation(t *testing.T) {
	base := []string{"GRPC_ADDR=:50051", "HTTP_ADDR=:8081"}
	tests := []struct {
		name    string
		env     []string
		wantErr string
	}{
		{name: "defaults are valid", env: base},
		{name: "negative drain", env: append(base, "DRAIN_DELAY=-1s"), wantErr: "DRAIN_DELAY must not be negative"},
		{name: "zero shutdown timeout", env: append(base, "SHUTDOWN_TIMEOUT=0s"), wantErr: "SHUTDOWN_TIMEOUT must be positive"},
		{name: "tiny message limit", env: append(base, "GRPC_MAX_RECV_MSG_BYTES=10"), wantErr: "GRPC_MAX_RECV_MSG_BYTES must be between"},
		{name: "unparsable streams", env: append(base, "GRPC_MAX_CONCURRENT_STREAMS=-3"), wantErr: `invalid GRPC_MAX_CONCURRENT_STREAMS="-3"`},
		{name: "empty address", env: []string{"HTTP_ADDR=:8081"}, wantErr: "GRPC_ADDR must not be empty"},
		{name: "TLS", env: append(base, "TLS_CERT_FILE=/t/tls.crt", "TLS_KEY_FILE=/t/tls.key", "TLS_CA_FILE=/t/ca.crt", "TLS_CLIENT_AUTH=require")},
		{name: "TLS key without certificate", env: append(base, "TLS_KEY_FILE=/t/tls.key"), wantErr: "TLS_CERT_FILE and TLS_KEY_FILE are set together"},
		{name: "mTLS without CA", env: append(base, "TLS_CERT_FILE=/t/tls.crt", "TLS_KEY_FILE=/t/tls.key", "TLS_CLIENT_AUTH=require"), wantErr: "TLS_CLIENT_AUTH=require needs"},
		{name: "unknown client auth", env: append(base, "TLS_CLIENT_AUTH=sometimes"), wantErr: `TLS_CLIENT_AUTH must be none or require, got "sometimes"`},
		{name: "zero reload", env: append(base, "TLS_RELOAD_INTERVAL=0s"), wantErr: "TLS_RELOAD_INTERVAL must be positive"},
		{name: "small header limit", env: append(base, "GRPC_MAX_HEADER_LIST_BYTES=100"), wantErr: "GRPC_MAX_HEADER_LIST_BYTES must be at least 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			err := config.Load(&c, tt.env)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load() = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}
