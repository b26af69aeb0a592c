//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/gatehouse-dev/gatehouse/hack/pki"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/internal/auth"
)

func needTLS(t *testing.T) {
	t.Helper()
	if caFile == "" {
		t.Skip("the release serves plaintext (tls.enabled=false)")
	}
}

// releaseCA is the CA that signed the release's certificates, with its
// key (the chart-generated <fullname>-ca Secret, or cert-manager's for
// the release's own CA Issuer); the test is skipped when the release has
// none (tls.source=existing, or your own issuer).
func releaseCA(t *testing.T) *pki.CA {
	t.Helper()
	needTLS(t)
	name := fullname() + "-ca"
	if kubectlRun(t, "-n", namespace, "get", "secret", name, "--ignore-not-found", "-o", "name") == "" {
		t.Skipf("no Secret %s: the release's certificates come from elsewhere", name)
	}
	d := secretData(t, name)
	ca, err := pki.LoadCA(d["tls.crt"], d["tls.key"])
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// secretData reads a Secret of the release's namespace, decoded.
// issuerURL is the release's JWT_ISSUER, as the Auth service's ConfigMap
// holds it.
func issuerURL(t *testing.T) string {
	t.Helper()
	u := strings.TrimSpace(kubectlRun(t, "-n", namespace, "get", "configmap", fullname()+"-auth", "-o", "jsonpath={.data.JWT_ISSUER}"))
	if u == "" {
		t.Fatal("the Auth ConfigMap has no JWT_ISSUER")
	}
	return u
}

func secretData(t *testing.T, name string) map[string][]byte {
	t.Helper()
	var s struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal([]byte(kubectlRun(t, "-n", namespace, "get", "secret", name, "-o", "json")), &s); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for k, v := range s.Data {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = b
	}
	return out
}

// patchSecret replaces some keys of a Secret in place, as cert-manager
// does when it renews: the pods see the files change, nothing restarts.
func patchSecret(t *testing.T, name string, data map[string][]byte) {
	t.Helper()
	enc := map[string]string{}
	for k, v := range data {
		enc[k] = base64.StdEncoding.EncodeToString(v)
	}
	patch, _ := json.Marshal(map[string]any{"data": enc})
	kubectlRun(t, "-n", namespace, "patch", "secret", name, "--type", "merge", "-p", string(patch))
}

func pool(cas ...*pki.CA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.Cert)
	}
	return p
}

// handshake opens a TLS connection to a port-forwarded gRPC port, as
// "localhost", trusting roots and presenting cert (if any), and makes one
// health call over it, so a client certificate the server refuses shows
// (TLS 1.3 refuses it after the handshake). It returns the certificate
// the server presented.
func handshake(addr string, roots *x509.CertPool, cert *tls.Certificate) (*x509.Certificate, error) {
	var served *x509.Certificate
	cfg := &tls.Config{
		RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error { served = cs.PeerCertificates[0]; return nil },
	}
	if cert != nil {
		// Always sent: with Certificates, crypto/tls would send a
		// certificate only if its issuer is among the CAs the server
		// lists, and a server that does not trust it would then see no
		// certificate at all, which TLS_CLIENT_AUTH=none accepts.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		return served, err
	}
	return served, nil
}

// TestPlaintextRefusedOnEveryPort: every port that carries a secret or a
// key refuses plaintext; the health port answers the kubelet in plaintext
// with a status and nothing else; the metrics port serves Prometheus in
// plaintext.
func TestPlaintextRefusedOnEveryPort(t *testing.T) {
	needTLS(t)
	for _, p := range []struct {
		svc  string
		port int
	}{{"user", 50051}, {"auth", 50052}} {
		addr := forwardFor(t, namespace, "svc/"+fullname()+"-"+p.svc, p.port)
		conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		_ = conn.Close()
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s gRPC %d in plaintext: %v, want Unavailable", p.svc, p.port, err)
		} else {
			t.Logf("%s gRPC %d in plaintext: refused: %v", p.svc, p.port, err)
		}
		if _, err := handshake(addr, pool(), nil); err == nil {
			t.Errorf("%s gRPC %d: a client trusting no CA got through", p.svc, p.port)
		}
	}
	jwks := forwardFor(t, namespace, "svc/"+fullname()+"-auth", 8082)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + jwks + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || bytes.Contains(body, []byte(`"keys"`)) {
		t.Errorf("JWKS over plaintext: %d %q, want 400 and no keys", resp.StatusCode, body)
	}
	t.Logf("JWKS over plaintext: %d %q", resp.StatusCode, strings.TrimSpace(string(body)))

	// The health port is the kubelet's: no Service exposes it.
	health := forwardFor(t, namespace, "pod/"+podsOf(t, "user")[0].Name, 8090)
	hc, err := grpc.NewClient("passthrough:///"+health, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hc.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := healthpb.NewHealthClient(hc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("plaintext health port: %v, %v", r, err)
	}
	_, err = userv1.NewUserServiceClient(hc).GetUser(ctx, &userv1.GetUserRequest{Id: "x"})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("GetUser on the health port: %v, want Unimplemented (health only)", err)
	}
	metrics := forwardFor(t, namespace, "svc/"+fullname()+"-auth", 9090)
	resp, err = (&http.Client{Timeout: 10 * time.Second}).Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("grpc_server_handled_total")) {
		t.Errorf("plaintext metrics port: %d", resp.StatusCode)
	}
}

// serviceToken mints the Auth service's own token with the release's
// signing key, as a thief of that token would hold it.
func serviceToken(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	active := ""
	for name, b := range secretData(t, fullname()+"-auth-keys") {
		if name == auth.ActiveKeyFile {
			active = strings.TrimSpace(string(b))
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ks, err := auth.OpenSigningKeyDir(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ks.Close() }()
	iss, err := auth.NewKeyIssuer(ks, dir, active, issuerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iss.IssueService("gatehouse", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

type bearerToken string

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearerToken) RequireTransportSecurity() bool { return true }

// TestVerifyPasswordNeedsTheAuthCertificate: with a valid service token,
// VerifyPassword still refuses a connection without the Auth service's
// certificate: none, or another name from the release's own CA.
func TestVerifyPasswordNeedsTheAuthCertificate(t *testing.T) {
	ca := releaseCA(t)
	intruderLeaf, err := ca.Issue(pki.Request{Names: []string{"intruder"}})
	if err != nil {
		t.Fatal(err)
	}
	intruder, err := tls.X509KeyPair(intruderLeaf.CertPEM, intruderLeaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	authTLS := secretData(t, fullname()+"-auth-tls")
	authCert, err := tls.X509KeyPair(authTLS["tls.crt"], authTLS["tls.key"])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(authTLS["ca.crt"])
	token := bearerToken(serviceToken(t))
	addr := forwardFor(t, namespace, "svc/"+fullname()+"-user", 50051)
	for _, tc := range []struct {
		name string
		cert *tls.Certificate
		want codes.Code
	}{
		{"no client certificate", nil, codes.PermissionDenied},
		{"a certificate of the same CA named intruder", &intruder, codes.PermissionDenied},
		{"the Auth service's certificate", &authCert, codes.Unauthenticated}, // the password is then checked: wrong
	} {
		cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
		if tc.cert != nil {
			cfg.Certificates = []tls.Certificate{*tc.cert}
		}
		conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)), grpc.WithPerRPCCredentials(token))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err = userv1.NewUserServiceClient(conn).VerifyPassword(ctx, &userv1.VerifyPasswordRequest{Email: "admin@example.com", Password: "not the password"})
		cancel()
		_ = conn.Close()
		if status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		} else {
			t.Logf("%s: %s: %s", tc.name, status.Code(err), status.Convert(err).Message())
		}
	}
}

// stopAndReport ends a loadgen pod early (SIGTERM: it drains and reports)
// and decodes its report, read from the log stream before the pod goes.
func (l *loadgen) stopAndReport(v any) {
	l.t.Helper()
	logs := exec.Command(kubectl, "-n", namespace, "logs", "-f", l.name)
	out, err := logs.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	if err := logs.Start(); err != nil {
		l.t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // attached before the container stops
	_ = exec.Command(kubectl, "-n", namespace, "delete", "pod", l.name, "--wait=false").Run()
	var report string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), `{"scenario"`) {
			report = sc.Text()
		}
	}
	_ = logs.Wait()
	if report == "" {
		l.t.Fatalf("loadgen %s printed no report", l.name)
	}
	if err := json.Unmarshal([]byte(report), v); err != nil {
		l.t.Fatalf("loadgen %s: report: %v\n%s", l.name, err, report)
	}
}

// TestCertificateRotationUnderLoad renews both services' certificates and
// then replaces the CA (the new CA added to every bundle, certificates
// reissued from it, the old CA removed) by editing their Secrets in place,
// as cert-manager does, while hack/loadgen logs in and calls GetUser.
// Promise: 0 failed calls, no restart; each step reaches every pod.
func TestCertificateRotationUnderLoad(t *testing.T) {
	caA := releaseCA(t)
	caB, err := pki.NewCA(fullname()+" CA B", 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bundle := func(cas ...*pki.CA) []byte {
		var b []byte
		for _, ca := range cas {
			b = append(b, ca.PEM...)
		}
		return b
	}
	// The test's own clients trust both CAs from here on.
	if err := os.WriteFile(caFile, bundle(caA, caB), 0o600); err != nil {
		t.Fatal(err)
	}
	// loadgen trusts both too: a client learns the new CA before any
	// server presents it.
	cm := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"e2e-rotation-ca","namespace":%q},"data":{"ca.crt":%q}}`, namespace, bundle(caA, caB))
	cmd := exec.Command(kubectl, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(cm)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command(kubectl, "-n", namespace, "delete", "configmap", "e2e-rotation-ca", "--ignore-not-found").Run()
	})

	lg := startLoadgenTrusting(t, "e2e-tls-rotation", map[string]any{"configMap": map[string]any{"name": "e2e-rotation-ca"}},
		"-rate", "20", "-duration", "900s", "-login-every", "5")
	lg.waitWarm()
	start := time.Now()

	current := map[string]*x509.Certificate{}
	for _, svc := range []string{"user", "auth"} {
		d := secretData(t, fullname()+"-"+svc+"-tls")
		pair, err := tls.X509KeyPair(d["tls.crt"], d["tls.key"])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: pool(caA), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Fatalf("the %s certificate does not chain to the release's CA (an earlier run on this cluster rotated it, and make deploy keeps the Secrets: make kind-down kind-up deploy): %v", svc, err)
		}
		current[svc] = pair.Leaf
	}
	reissue := func(ca *pki.CA, caBundle []byte) map[string]string {
		serials := map[string]string{}
		for _, svc := range []string{"user", "auth"} {
			names := append([]string{}, current[svc].DNSNames...)
			for _, ip := range current[svc].IPAddresses {
				names = append(names, ip.String())
			}
			leaf, err := ca.Issue(pki.Request{Names: names, NotAfter: time.Now().Add(30 * 24 * time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			patchSecret(t, fullname()+"-"+svc+"-tls", map[string][]byte{"tls.crt": leaf.CertPEM, "tls.key": leaf.KeyPEM, "ca.crt": caBundle})
			serials[svc] = leaf.Cert.SerialNumber.String()
		}
		return serials
	}
	ports := map[string]int{"user": 50051, "auth": 50052}
	// everyPod waits until check passes on every ready pod of both
	// services. Each attempt gets a port-forward of its own: kubectl
	// port-forward gives up on a pod connection the server resets, as a
	// refused handshake does.
	everyPod := func(step string, check func(addr string) error) {
		t.Helper()
		began := time.Now()
		for svc, port := range ports {
			for _, p := range podsOf(t, svc) {
				if !p.Ready {
					continue
				}
				eventually(t, 4*time.Minute, step+" on pod "+p.Name, func() error {
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					addr, cmd, err := portForward(ctx, namespace, "pod/"+p.Name, port)
					if err != nil {
						return err
					}
					defer func() { cancel(); _ = cmd.Wait() }()
					return check(addr)
				})
			}
		}
		t.Logf("%s: every pod after %s", step, time.Since(began).Round(time.Second))
	}
	servesSerial := func(serials map[string]string) func(string) error {
		return func(addr string) error {
			served, err := handshake(addr, pool(caA, caB), nil)
			if err != nil {
				return err
			}
			for _, s := range serials {
				if served.SerialNumber.String() == s {
					return nil
				}
			}
			return fmt.Errorf("still serves serial %s", served.SerialNumber)
		}
	}
	probeCert := func(ca *pki.CA) *tls.Certificate {
		l, err := ca.Issue(pki.Request{Names: []string{"e2e-probe"}})
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return &c
	}
	fromA, fromB := probeCert(caA), probeCert(caB)

	// 1. Renewal: new certificates from the same CA.
	everyPod("renewed certificates served", servesSerial(reissue(caA, bundle(caA))))
	// 2. The new CA joins every bundle: a client certificate of CA B is
	// accepted once a pod has re-read its ca.crt.
	for _, svc := range []string{"user", "auth"} {
		patchSecret(t, fullname()+"-"+svc+"-tls", map[string][]byte{"ca.crt": bundle(caA, caB)})
	}
	everyPod("CA B trusted", func(addr string) error { _, err := handshake(addr, pool(caA, caB), fromB); return err })
	// 3. Certificates reissued from CA B.
	everyPod("certificates of CA B served", servesSerial(reissue(caB, bundle(caA, caB))))
	// 4. CA A leaves the bundles: its client certificates are refused.
	for _, svc := range []string{"user", "auth"} {
		patchSecret(t, fullname()+"-"+svc+"-tls", map[string][]byte{"ca.crt": bundle(caB)})
	}
	if err := os.WriteFile(caFile, bundle(caB), 0o600); err != nil {
		t.Fatal(err)
	}
	everyPod("CA A no longer trusted", func(addr string) error {
		if _, err := handshake(addr, pool(caB), fromA); err == nil {
			return fmt.Errorf("a client certificate of CA A is still accepted")
		}
		if _, err := handshake(addr, pool(caB), nil); err != nil {
			return fmt.Errorf("a client trusting CA B alone: %w", err)
		}
		return nil
	})
	// A few more seconds of load on the new CA alone, then the tally.
	time.Sleep(10 * time.Second)
	var r steadyReport
	lg.stopAndReport(&r)
	t.Logf("certificate renewal and CA rotation of both services under load (%s): %s", time.Since(start).Round(time.Second), r)
	if r.Failed != 0 {
		t.Errorf("%d calls failed during the rotation, want 0: %v", r.Failed, r.FirstErrors)
	}
	if r.OK == 0 {
		t.Error("no call succeeded: the load did not run")
	}
	noRestarts(t, "user", "auth")
	// The walk-through still works for a client that trusts CA B only.
	email, pw := unique("after-rotation"), "new CA, same users"
	signup(t, email, pw)
	login(t, email, pw)
}
