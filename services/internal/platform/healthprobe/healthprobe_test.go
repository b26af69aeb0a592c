package healthprobe

import (
	"net"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func serve(t *testing.T, st healthpb.HealthCheckResponse_ServingStatus) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	h := health.NewServer()
	h.SetServingStatus("", st)
	healthpb.RegisterHealthServer(s, h)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return l.Addr().String()
}

func TestRun(t *testing.T) {
	up := serve(t, healthpb.HealthCheckResponse_SERVING)
	down := serve(t, healthpb.HealthCheckResponse_NOT_SERVING)
	dead := func() string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		a := l.Addr().String()
		_ = l.Close()
		return a
	}()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"serving", []string{up}, ""},
		{"two serving", []string{up, up}, ""},
		{"not serving", []string{up, down}, "NOT_SERVING"},
		{"unknown service", []string{"-service", "nope", up}, "NotFound"},
		{"nothing listening", []string{"-timeout", "500ms", dead}, dead},
		{"no address", nil, "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			err := Run(tt.args, &out)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("run = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}
