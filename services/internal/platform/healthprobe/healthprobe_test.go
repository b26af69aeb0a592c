package healthprobe

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gatehouse-dev/gatehouse/hack/pki"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/tlsfiles"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func serve(t *testing.T, st healthpb.HealthCheckResponse_ServingStatus, opts ...grpc.ServerOption) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(opts...)
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
	// A TLS server requiring client certificates, named "gatehouse-user".
	ca, err := pki.NewCA("probe CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string, names ...string) pki.Files {
		_, f, err := ca.IssueFiles(filepath.Join(t.TempDir(), name), pki.Request{Names: names})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	sf, cf := issue("server", "gatehouse-user"), issue("client", "probe")
	files, err := tlsfiles.Open(tlsfiles.Config{CertFile: sf.Cert, KeyFile: sf.Key, CAFile: sf.CA, ClientAuth: tlsfiles.ClientAuthRequire, ReloadInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	secure := serve(t, healthpb.HealthCheckResponse_SERVING, grpc.Creds(files.ServerCredentials()))

	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"TLS with a client certificate", []string{"-cacert", cf.CA, "-cert", cf.Cert, "-key", cf.Key, "-servername", "gatehouse-user", secure}, ""},
		{"TLS without the server's name", []string{"-cacert", cf.CA, "-cert", cf.Cert, "-key", cf.Key, secure}, "cannot validate certificate for 127.0.0.1"},
		{"TLS without a client certificate", []string{"-cacert", cf.CA, "-servername", "gatehouse-user", secure}, secure},
		{"plaintext to TLS", []string{"-timeout", "1s", secure}, secure},
		{"client certificate without a CA", []string{"-cert", cf.Cert, "-key", cf.Key, secure}, "need -cacert"},
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
