package tlsfiles_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/gatehouse-dev/gatehouse/hack/pki"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/tlsfiles"
)

// testPKI is a CA with a server certificate for localhost and a client
// certificate for "client.test", written where a process reads them.
type testPKI struct {
	ca         *pki.CA
	serverDir  string
	serverCfg  tlsfiles.Config
	clientFile pki.Files
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	ca := mustCA(t, "test CA")
	p := &testPKI{ca: ca, serverDir: filepath.Join(t.TempDir(), "server")}
	sf := writeLeaf(t, p.serverDir, ca, pki.Request{Names: []string{"localhost", "127.0.0.1"}}, ca)
	p.serverCfg = tlsfiles.Config{CertFile: sf.Cert, KeyFile: sf.Key, CAFile: sf.CA, ClientAuth: tlsfiles.ClientAuthNone, ReloadInterval: 20 * time.Millisecond}
	p.clientFile = writeLeaf(t, filepath.Join(t.TempDir(), "client"), ca, pki.Request{Names: []string{"client.test"}}, ca)
	return p
}

func mustCA(t *testing.T, name string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(name, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func writeLeaf(t *testing.T, dir string, ca *pki.CA, r pki.Request, bundle ...*pki.CA) pki.Files {
	t.Helper()
	_, f, err := ca.IssueFiles(dir, r, bundle...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func open(t *testing.T, c tlsfiles.Config) *tlsfiles.Files {
	t.Helper()
	f, err := tlsfiles.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// serve runs a gRPC server with the health service on loopback; the
// handler records the peer names it saw.
func serve(t *testing.T, creds credentials.TransportCredentials) (addr string, peers chan []string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peers = make(chan []string, 16)
	srv := grpc.NewServer(grpc.Creds(creds), grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		names, _ := tlsfiles.PeerNames(ctx)
		peers <- names
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), peers
}

// check makes one health call over a new connection, named as
// "localhost" so that the server certificate's name is verified.
func check(t *testing.T, addr string, creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	conn, err := grpc.NewClient("localhost:"+port, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return conn, err
}

func TestHandshakes(t *testing.T) {
	p := newPKI(t)
	other := mustCA(t, "another CA")
	dir := t.TempDir()
	expired := writeLeaf(t, filepath.Join(dir, "expired"), p.ca, pki.Request{
		Names: []string{"client.test"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour),
	}, p.ca)
	foreign := writeLeaf(t, filepath.Join(dir, "foreign"), other, pki.Request{Names: []string{"client.test"}}, p.ca)
	foreignServer := writeLeaf(t, filepath.Join(dir, "foreign-server"), other, pki.Request{Names: []string{"localhost"}}, other)
	wrongName := writeLeaf(t, filepath.Join(dir, "wrong-name"), p.ca, pki.Request{Names: []string{"elsewhere.test"}}, p.ca)

	// A client process: its own certificate (or none) and the bundle it
	// trusts. Expired files are loaded by hand: Open refuses them.
	client := func(f *pki.Files, caFile string) credentials.TransportCredentials {
		if f == nil {
			return open(t, tlsfiles.Config{CAFile: caFile, ClientAuth: "none", ReloadInterval: time.Hour}).ClientCredentials()
		}
		if f == &expired {
			pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
			if err != nil {
				t.Fatal(err)
			}
			caPEM, err := os.ReadFile(caFile)
			if err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(caPEM)
			return credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}})
		}
		return open(t, tlsfiles.Config{CertFile: f.Cert, KeyFile: f.Key, CAFile: caFile, ClientAuth: "none", ReloadInterval: time.Hour}).ClientCredentials()
	}

	tests := []struct {
		name       string
		clientAuth string
		server     *pki.Files // nil: the test PKI's server certificate
		client     *pki.Files // nil: no client certificate
		trust      string     // the client's TLS_CA_FILE; "" = the test CA
		wantErr    string     // "" = the call succeeds; else a part of the error
		wantPeer   string     // a name the server must see, if any
	}{
		{name: "valid client certificate", clientAuth: "require", client: &p.clientFile, wantPeer: "client.test"},
		{name: "no client certificate, none", clientAuth: "none"},
		{name: "valid client certificate, none", clientAuth: "none", client: &p.clientFile, wantPeer: "client.test"},
		// The server refuses these after the client has sent its
		// Finished (TLS 1.3), so the client sees the server's alert or a
		// broken pipe, by luck: what counts is that no call got through.
		{name: "no client certificate, require", clientAuth: "require", wantErr: " "},
		{name: "expired client certificate", clientAuth: "require", client: &expired, wantErr: " "},
		{name: "expired client certificate, none", clientAuth: "none", client: &expired, wantErr: " "},
		{name: "client certificate from another CA", clientAuth: "require", client: &foreign, wantErr: " "},
		{name: "server certificate from another CA", clientAuth: "none", server: &foreignServer, wantErr: "certificate signed by unknown authority"},
		{name: "server certificate for another name", clientAuth: "none", server: &wrongName, wantErr: "not localhost"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := p.serverCfg
			cfg.ClientAuth = tc.clientAuth
			if tc.server != nil {
				cfg.CertFile, cfg.KeyFile = tc.server.Cert, tc.server.Key
			}
			addr, peers := serve(t, open(t, cfg).ServerCredentials())
			trust := tc.trust
			if trust == "" {
				trust = p.serverCfg.CAFile
			}
			_, err := check(t, addr, client(tc.client, trust))
			if tc.wantErr != "" {
				if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("call: %v, want Unavailable mentioning %q", err, tc.wantErr)
				}
				select {
				case got := <-peers:
					t.Fatalf("a refused handshake reached the handler (peer %v)", got)
				default:
				}
				return
			}
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			got := <-peers
			if tc.wantPeer != "" && !strings.Contains(strings.Join(got, " "), tc.wantPeer) {
				t.Fatalf("server saw peer names %v, want %s", got, tc.wantPeer)
			}
			if tc.wantPeer == "" && len(got) != 0 {
				t.Fatalf("server saw peer names %v from a client without a certificate", got)
			}
		})
	}
}

// TestServerOffersOnlyStrongTLS: TLS 1.1 and a CBC suite are refused.
func TestServerOffersOnlyStrongTLS(t *testing.T) {
	p := newPKI(t)
	addr, _ := serve(t, open(t, p.serverCfg).ServerCredentials())
	for name, c := range map[string]*tls.Config{
		"TLS 1.1":        {MaxVersion: tls.VersionTLS11},
		"TLS 1.2 CBC":    {MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}},
		"TLS 1.2 static": {MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}},
	} {
		c.InsecureSkipVerify = true //nolint:gosec // only the version and suite matter here
		c.NextProtos = []string{"h2"}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, c)
		if err == nil {
			_ = conn.Close()
			t.Errorf("%s: handshake succeeded", name)
		}
	}
	c := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}} //nolint:gosec // checking the version only
	conn, err := tls.Dial("tcp", addr, c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("negotiated %x, want TLS 1.3 (preferred)", v)
	}
}

// TestPlaintextClientFailsFast: a plaintext gRPC client to a TLS port gets
// Unavailable at once, not a hang until its deadline.
func TestPlaintextClientFailsFast(t *testing.T) {
	p := newPKI(t)
	addr, _ := serve(t, open(t, p.serverCfg).ServerCredentials())
	start := time.Now()
	_, err := check(t, addr, insecure.NewCredentials())
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext call: %v, want Unavailable", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("plaintext call took %s; want a fast failure", took)
	}
}

// TestHTTPPlaintextGetsAClearAnswer: a plaintext HTTP request to a TLS
// HTTP port is told to use HTTPS.
func TestHTTPPlaintextGetsAClearAnswer(t *testing.T) {
	p := newPKI(t)
	f := open(t, p.serverCfg)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "keys") }), TLSConfig: f.ServerConfig(false, "h2", "http/1.1"), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.ServeTLS(lis, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	url := "://localhost:" + lis.Addr().(*net.TCPAddr).AddrPort().String()[len("127.0.0.1:"):] + "/"

	resp, err := http.Get("http" + url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS") {
		t.Fatalf("plaintext: %d %q, want 400 naming HTTPS", resp.StatusCode, body)
	}
	transport := open(t, tlsfiles.Config{CAFile: p.serverCfg.CAFile, ClientAuth: "none", ReloadInterval: time.Hour}).HTTPTransport()
	if transport.Proxy != nil {
		// Through a proxy net/http would verify with TLSClientConfig
		// (nil: the system roots), not with the CA bundle.
		t.Fatal("the https transport uses a proxy")
	}
	client := &http.Client{Transport: transport}
	resp, err = client.Get("https" + url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != "keys" {
		t.Fatalf("https: %q", body)
	}
}

// servedSerial is the serial number of the certificate the server
// presents to a new connection.
func servedSerial(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec // reading the certificate only
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func waitForSerial(t *testing.T, addr, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for servedSerial(t, addr) != want {
		if time.Now().After(deadline) {
			t.Fatalf("server still presents serial %s, want %s", servedSerial(t, addr), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReloadWithoutRestart: a certificate replaced on disk is presented to
// the next handshake; a connection opened before keeps working.
func TestReloadWithoutRestart(t *testing.T) {
	p := newPKI(t)
	addr, _ := serve(t, open(t, p.serverCfg).ServerCredentials())
	clientCreds := open(t, tlsfiles.Config{CAFile: p.serverCfg.CAFile, ClientAuth: "none", ReloadInterval: time.Hour}).ClientCredentials()
	before, err := check(t, addr, clientCreds)
	if err != nil {
		t.Fatal(err)
	}
	old := servedSerial(t, addr)

	leaf, _, err := p.ca.IssueFiles(p.serverDir, pki.Request{Names: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	waitForSerial(t, addr, leaf.Cert.SerialNumber.String())
	if old == leaf.Cert.SerialNumber.String() {
		t.Fatal("the new certificate has the old serial")
	}
	if _, err := healthpb.NewHealthClient(before).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("connection opened before the reload: %v", err)
	}
	if _, err := check(t, addr, clientCreds); err != nil {
		t.Fatalf("new connection after the reload: %v", err)
	}
}

// TestReloadSecretVolumeSwap replays how the kubelet updates a Secret
// volume: the files are links through ..data, and ..data is swapped to a
// new timestamped directory in one rename. Both the certificate and the
// CA bundle follow, so a new CA is trusted without a restart.
func TestReloadSecretVolumeSwap(t *testing.T) {
	vol := t.TempDir()
	caA, caB := mustCA(t, "CA A"), mustCA(t, "CA B")
	publish := func(gen string, leaf *pki.Leaf, bundle ...*pki.CA) {
		t.Helper()
		if _, err := pki.WriteFiles(filepath.Join(vol, gen), leaf, bundle...); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(vol, "..data_tmp")
		if err := os.Symlink(gen, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(vol, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	issue := func(ca *pki.CA, names ...string) *pki.Leaf {
		t.Helper()
		l, err := ca.Issue(pki.Request{Names: names})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	serverA := issue(caA, "localhost")
	publish("..2026_12_06_10_00_00.1", serverA, caA)
	for _, f := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(vol, f)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := tlsfiles.Config{
		CertFile: filepath.Join(vol, "tls.crt"), KeyFile: filepath.Join(vol, "tls.key"), CAFile: filepath.Join(vol, "ca.crt"),
		ClientAuth: tlsfiles.ClientAuthRequire, ReloadInterval: 20 * time.Millisecond,
	}
	addr, _ := serve(t, open(t, cfg).ServerCredentials())

	// A client of CA B is refused while the server trusts only CA A ...
	clientDir := t.TempDir()
	cf, err := pki.WriteFiles(clientDir, issue(caB, "client.test"), caA, caB)
	if err != nil {
		t.Fatal(err)
	}
	clientB := open(t, tlsfiles.Config{CertFile: cf.Cert, KeyFile: cf.Key, CAFile: cf.CA, ClientAuth: "none", ReloadInterval: time.Hour}).ClientCredentials()
	if _, err := check(t, addr, clientB); err == nil {
		t.Fatal("client of CA B accepted before the server trusts CA B")
	}
	// ... and accepted once the volume's bundle holds both CAs, with a
	// server certificate from CA B.
	serverB := issue(caB, "localhost")
	publish("..2026_12_06_10_05_00.2", serverB, caA, caB)
	waitForSerial(t, addr, serverB.Cert.SerialNumber.String())
	if _, err := check(t, addr, clientB); err != nil {
		t.Fatalf("client of CA B after the swap: %v", err)
	}
}

func TestOpenRefusesBadFiles(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	secretKey := "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n"
	otherKey := filepath.Join(dir, "other", "tls.key")
	otherLeaf, _, err := p.ca.IssueFiles(filepath.Dir(otherKey), pki.Request{Names: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	expiredDir := filepath.Join(dir, "expired")
	expired := writeLeaf(t, expiredDir, p.ca, pki.Request{Names: []string{"x"}, NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}, p.ca)
	serverCert, err := os.ReadFile(p.serverCfg.CertFile)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		cfg  tlsfiles.Config
		want string
	}{
		{"missing certificate", tlsfiles.Config{CertFile: filepath.Join(dir, "none.crt"), KeyFile: filepath.Join(dir, "none.key")}, "TLS_CERT_FILE: open"},
		{"missing key", tlsfiles.Config{CertFile: p.serverCfg.CertFile, KeyFile: filepath.Join(filepath.Dir(p.serverCfg.CertFile), "none.key")}, "TLS_KEY_FILE: open"},
		{"garbage key", tlsfiles.Config{CertFile: write("a.crt", string(otherLeaf.CertPEM)), KeyFile: write("a.key", secretKey)}, "TLS_CERT_FILE " + filepath.Join(dir, "a.crt") + " and TLS_KEY_FILE"},
		{"certificate and key of different pairs", tlsfiles.Config{CertFile: write("m.crt", string(serverCert)), KeyFile: write("m.key", string(otherLeaf.KeyPEM))}, "private key does not match public key"},
		{"not PEM", tlsfiles.Config{CertFile: write("b.crt", "hello"), KeyFile: write("b.key", "world")}, "not a matching PEM certificate and key"},
		{"expired certificate", tlsfiles.Config{CertFile: expired.Cert, KeyFile: expired.Key}, "TLS_CERT_FILE " + expired.Cert + ": certificate expired"},
		{"missing CA", tlsfiles.Config{CAFile: filepath.Join(dir, "none-ca.crt")}, "TLS_CA_FILE: open"},
		{"CA without a certificate", tlsfiles.Config{CAFile: write("ca.crt", "not a certificate")}, "TLS_CA_FILE " + filepath.Join(dir, "ca.crt") + ": no PEM certificate"},
		{"certificate without key", tlsfiles.Config{CertFile: p.serverCfg.CertFile}, "TLS_CERT_FILE and TLS_KEY_FILE are set together"},
		{"files in two directories", tlsfiles.Config{CertFile: p.serverCfg.CertFile, KeyFile: otherKey}, "same directory"},
		{"require without CA", tlsfiles.Config{CertFile: p.serverCfg.CertFile, KeyFile: p.serverCfg.KeyFile, ClientAuth: "require"}, "TLS_CLIENT_AUTH=require needs"},
		{"unknown client auth", tlsfiles.Config{ClientAuth: "optional"}, `TLS_CLIENT_AUTH must be none or require, got "optional"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.ClientAuth == "" {
				tc.cfg.ClientAuth = "none"
			}
			tc.cfg.ReloadInterval = time.Second
			f, err := tlsfiles.Open(tc.cfg)
			if err == nil {
				f.Close()
				t.Fatalf("Open accepted %+v", tc.cfg)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "c2VjcmV0") || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatalf("error echoes the key file: %q", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestNothingConfiguredIsPlaintext(t *testing.T) {
	f, err := tlsfiles.Open(tlsfiles.Config{ClientAuth: "none", ReloadInterval: time.Second})
	if err != nil || f != nil {
		t.Fatalf("Open of nothing = %v, %v; want nil, nil", f, err)
	}
	if f.Serving() || f.ServerCredentials() != nil || f.ClientCredentials() != nil || f.ServerConfig(true) != nil || f.HTTPTransport() != nil {
		t.Fatal("a nil *Files must mean plaintext")
	}
}
