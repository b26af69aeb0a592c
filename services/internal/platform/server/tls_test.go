package server

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/gatehouse-dev/gatehouse/hack/pki"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/tlsfiles"
)

// tlsFiles writes a CA and a certificate for 127.0.0.1 and opens them.
func tlsFiles(t *testing.T) *tlsfiles.Files {
	t.Helper()
	ca, err := pki.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, f, err := ca.IssueFiles(filepath.Join(t.TempDir(), "tls"), pki.Request{Names: []string{"127.0.0.1", "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	files, err := tlsfiles.Open(tlsfiles.Config{CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA, ClientAuth: tlsfiles.ClientAuthNone, ReloadInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(files.Close)
	return files
}

// TestTLSWithPlaintextSidePorts: with TLS on, the gRPC and HTTP ports
// refuse plaintext, while the health port (for the kubelet) and the
// metrics port (for Prometheus) answer in plaintext and serve nothing
// else.
func TestTLSWithPlaintextSidePorts(t *testing.T) {
	cfg := testConfig()
	cfg.HealthAddr, cfg.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0"
	files := tlsFiles(t)
	h := startWith(t, cfg, Options{TLS: files})

	if got := h.health(t, ""); got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health over TLS = %s", got)
	}
	plain, err := grpc.NewClient(h.ls.GRPC.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = plain.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(plain).Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext call to the TLS gRPC port: %v, want Unavailable", err)
	}

	probe, err := grpc.NewClient(h.ls.Health.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = probe.Close() }()
	resp, err := healthpb.NewHealthClient(probe).Check(ctx, &healthpb.HealthCheckRequest{Service: LivenessService})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("plaintext health port: %v, %v", resp, err)
	}
	// Nothing but health: the test service is not on the health port.
	err = probe.Invoke(ctx, "/test.v1.Testing/Sleep", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("a domain method on the health port: %v, want Unimplemented", err)
	}

	get := func(c *http.Client, url string) (int, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(http.DefaultClient, "http://"+h.ls.Metrics.Addr().String()+"/metrics"); code != http.StatusOK || !strings.Contains(body, "grpc_server_handled_total") {
		t.Fatalf("plaintext metrics port: %d", code)
	}
	if code, _ := get(http.DefaultClient, "http://"+h.httpAddr+"/metrics"); code != http.StatusBadRequest {
		t.Fatalf("plaintext request to the TLS HTTP port: %d, want 400", code)
	}
	tlsClient := &http.Client{Transport: files.HTTPTransport()}
	if code, _ := get(tlsClient, "https://"+h.httpAddr+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics on the HTTP port with METRICS_ADDR set: %d, want 404 (moved)", code)
	}
}

// TestHealthPortDrains: the kubelet's port reports NOT_SERVING during the
// drain, like the main port.
func TestHealthPortDrains(t *testing.T) {
	cfg := testConfig()
	cfg.HealthAddr = "127.0.0.1:0"
	cfg.DrainDelay = 2 * time.Second
	h := startWith(t, cfg, Options{})
	probe, err := grpc.NewClient(h.ls.Health.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = probe.Close() }()
	h.cancel()
	deadline := time.Now().Add(2 * time.Second)
	for {
		resp, err := healthpb.NewHealthClient(probe).Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health port during the drain: %v, %v; want NOT_SERVING", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
