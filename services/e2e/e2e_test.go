//go:build e2e

// Package e2e drives a running Gatehouse deployment the way a user does:
// kubectl port-forward to the Services and the real grpcurl, helm test,
// and kubectl for pod state. It runs against the current kube context,
// which `make e2e` first checks is the kind cluster (hack/kind/e2e-guard.sh);
// hack/kind/up.sh and deploy.sh come first.
//
// Environment: E2E_NAMESPACE (gatehouse-e2e), E2E_RELEASE (gatehouse),
// E2E_MONITORING_NAMESPACE (monitoring), KUBECTL, HELM, GRPCURL (default:
// on PATH, then ./bin).
package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	namespace  = envOr("E2E_NAMESPACE", "gatehouse-e2e")
	monitoring = envOr("E2E_MONITORING_NAMESPACE", "monitoring")
	release    = envOr("E2E_RELEASE", "gatehouse")
	kubectl    = tool("KUBECTL", "kubectl")
	helm       = tool("HELM", "helm")
	grpcurl    = tool("GRPCURL", "grpcurl")
	userAddr   string
	authAddr   string
	// caFile is the release's CA bundle (ca.crt of the User service's TLS
	// Secret), written at start when the release serves TLS; "" when it
	// serves plaintext.
	caFile string
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// tool finds a binary: $ENV, then PATH, then the repository's bin/.
func tool(env, name string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return filepath.Join("..", "..", "bin", name)
}

// fullname mirrors the chart's naming: a release named gatehouse* is used
// as is, anything else gets -gatehouse appended.
func fullname() string {
	if strings.HasPrefix(release, "gatehouse") {
		return release
	}
	return release + "-gatehouse"
}

func TestMain(m *testing.M) {
	pinned, err := pinContext()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	defer func() { _ = os.Remove(pinned) }()
	if err := loadCA(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	if err := connect(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		disconnect()
		os.Exit(1)
	}
	code := m.Run()
	disconnect()
	_ = os.Remove(pinned)
	os.Exit(code)
}

// pinContext refuses every kube context but the kind cluster's
// (kind-$CLUSTER_NAME, default kind-gatehouse) unless E2E_CONTEXT names
// it: these tests delete pods, scale PostgreSQL to zero and rotate keys.
// `make e2e` says so before compiling (hack/kind/e2e-guard.sh); this holds
// for `go test` run any other way. The context is then pinned: KUBECONFIG
// becomes a copy holding that context alone, so a `kubectl config
// use-context` elsewhere during the run cannot redirect a later call.
func pinContext() (string, error) {
	want := envOr("E2E_CONTEXT", "kind-"+envOr("CLUSTER_NAME", "gatehouse"))
	cur, err := exec.Command(kubectl, "config", "current-context").Output()
	if err != nil {
		return "", fmt.Errorf("no cluster (no current kube context): run 'make kind-up deploy'")
	}
	if got := strings.TrimSpace(string(cur)); got != want {
		return "", fmt.Errorf("the current context is %q, not %q: these tests disrupt the cluster; use the kind cluster or set E2E_CONTEXT=%s", got, want, got)
	}
	cfg, err := exec.Command(kubectl, "config", "view", "--minify", "--flatten", "--context", want).Output()
	if err != nil {
		return "", fmt.Errorf("kubectl config view --context %s: %w", want, err)
	}
	f, err := os.CreateTemp("", "gatehouse-e2e-kubeconfig-")
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Write(cfg); err != nil {
		return "", err
	}
	return f.Name(), os.Setenv("KUBECONFIG", f.Name())
}

// loadCA reads the CA the release's certificates chain to, if it serves
// TLS, into a temporary file for grpcurl -cacert and the Go clients. The
// certificates also name localhost, so port-forwarded addresses verify.
func loadCA() error {
	out, err := exec.Command(kubectl, "-n", namespace, "get", "secret", fullname()+"-user-tls", "--ignore-not-found",
		"-o", `jsonpath={.data.ca\.crt}`).Output()
	if err != nil {
		return fmt.Errorf("reading the release's CA: %w", err)
	}
	if len(out) == 0 {
		return nil // tls.enabled=false: plaintext
	}
	pem, err := base64.StdEncoding.DecodeString(string(out))
	if err != nil {
		return fmt.Errorf("the release's ca.crt: %w", err)
	}
	f, err := os.CreateTemp("", "gatehouse-e2e-ca-*.crt")
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Write(pem); err != nil {
		return err
	}
	caFile = f.Name()
	return nil
}

// transport is grpcurl's transport flags for the release.
func transport() []string {
	if caFile == "" {
		return []string{"-plaintext"}
	}
	return []string{"-cacert", caFile}
}

// stopForwards ends the port-forwards behind userAddr and authAddr.
var stopForwards = func() {}

// connect (re)opens the port-forwards to both Services. kubectl
// port-forward picks one pod and dies with it, so tests that replace pods
// call it again before handing the addresses on.
func connect() error {
	disconnect()
	ctx, cancel := context.WithCancel(context.Background())
	var cmds []*exec.Cmd
	forward := func(svc string, port int) (addr string, err error) {
		var cmd *exec.Cmd
		if addr, cmd, err = portForward(ctx, namespace, "svc/"+fullname()+"-"+svc, port); err == nil {
			cmds = append(cmds, cmd)
		}
		return addr, err
	}
	var err error
	if userAddr, err = forward("user", 50051); err == nil {
		authAddr, err = forward("auth", 50052)
	}
	stopForwards = func() {
		cancel()
		// Reap them, or they outlive the test binary holding its output open.
		for _, c := range cmds {
			_ = c.Wait()
		}
	}
	return err
}

func disconnect() { stopForwards(); stopForwards = func() {} }

// reconnect is connect for a test.
func reconnect(t *testing.T) {
	t.Helper()
	if err := connect(); err != nil {
		t.Fatal(err)
	}
}

var forwarding = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+)`)

// portForward runs kubectl port-forward to a random local port and returns
// the local address once kubectl reports it, and the running kubectl,
// which ends with ctx and must then be waited for.
func portForward(ctx context.Context, ns, target string, port int) (string, *exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, kubectl, "-n", ns, "port-forward", "--address", "127.0.0.1", target, fmt.Sprintf(":%d", port))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("kubectl port-forward %s: %w", target, err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := forwarding.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- "127.0.0.1:" + m[1]:
				default:
				}
			}
		}
	}()
	select {
	case addr := <-found:
		return addr, cmd, nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait() // after this, stderr is no longer written
		return "", nil, fmt.Errorf("kubectl port-forward %s: no local port within 30s: %s", target, stderr.String())
	}
}

// forwardFor port-forwards to a target for the duration of one test.
func forwardFor(t *testing.T, ns, target string, port int) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr, cmd, err := portForward(ctx, ns, target, port)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	return addr
}

// call runs grpcurl and returns its JSON answer, or the gRPC code name of
// the error ("Unauthenticated", ...). headers are extra "name: value"
// request metadata.
func call(t *testing.T, addr, method, token string, req any, headers ...string) (map[string]any, string) {
	t.Helper()
	return callOver(t, transport(), addr, method, token, req, headers...)
}

// callOver is call with grpcurl's transport flags given, for a server that
// is not the release's (the example service serves plaintext).
func callOver(t *testing.T, transport []string, addr, method, token string, req any, headers ...string) (map[string]any, string) {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	// -max-time: a hung call fails the test with DeadlineExceeded instead of hanging it.
	args := append(slices.Clone(transport), "-format-error", "-max-time", "20", "-d", string(body))
	if token != "" {
		args = append(args, "-H", "authorization: Bearer "+token)
	}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	args = append(args, addr, method)
	out, err := exec.Command(grpcurl, args...).CombinedOutput()
	if err != nil {
		var st struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if jerr := json.Unmarshal(out, &st); jerr != nil {
			t.Fatalf("grpcurl %s: %v\n%s", method, err, out)
		}
		return nil, codeName(st.Code)
	}
	var resp map[string]any
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("grpcurl %s: not JSON: %s", method, out)
	}
	return resp, "OK"
}

func codeName(c int) string {
	names := []string{"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
		"PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
		"Internal", "Unavailable", "DataLoss", "Unauthenticated"}
	if c >= 0 && c < len(names) {
		return names[c]
	}
	return fmt.Sprint(c)
}

func must(t *testing.T, resp map[string]any, code, want string) map[string]any {
	t.Helper()
	if code != want {
		t.Fatalf("code = %s, want %s (%v)", code, want, resp)
	}
	return resp
}

func str(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mm[p]
	}
	s, _ := v.(string)
	return s
}

func signup(t *testing.T, email, password string) string {
	t.Helper()
	resp, code := call(t, userAddr, "user.v1.UserService/CreateUser", "", map[string]string{"email": email, "password": password, "display_name": "E2E"})
	return str(must(t, resp, code, "OK"), "user", "id")
}

func login(t *testing.T, email, password string) (access, refresh string) {
	t.Helper()
	resp, code := call(t, authAddr, "auth.v1.AuthService/Login", "", map[string]string{"email": email, "password": password})
	must(t, resp, code, "OK")
	return str(resp, "accessToken"), str(resp, "refreshToken")
}

func unique(prefix string) string {
	return fmt.Sprintf("%s-%d@example.com", prefix, time.Now().UnixNano())
}

// TestWalkthrough is the README walk-through against the cluster.
func TestWalkthrough(t *testing.T) {
	email, pw := unique("ada"), "correct horse battery"
	id := signup(t, email, pw)
	access, refresh := login(t, email, pw)

	got, code := call(t, userAddr, "user.v1.UserService/GetUser", access, map[string]string{"id": id})
	if must(t, got, code, "OK"); str(got, "user", "email") != email {
		t.Fatalf("GetUser = %v", got)
	}
	_, code = call(t, userAddr, "user.v1.UserService/GetUser", "", map[string]string{"id": id})
	must(t, nil, code, "Unauthenticated")

	rotated, code := call(t, authAddr, "auth.v1.AuthService/RefreshToken", "", map[string]string{"refresh_token": refresh})
	must(t, rotated, code, "OK")
	next := str(rotated, "refreshToken")
	if next == "" || next == refresh {
		t.Fatalf("refresh did not rotate: %v", rotated)
	}
	// Reuse of the old token is refused and revokes the family.
	_, code = call(t, authAddr, "auth.v1.AuthService/RefreshToken", "", map[string]string{"refresh_token": refresh})
	must(t, nil, code, "Unauthenticated")
	_, code = call(t, authAddr, "auth.v1.AuthService/RefreshToken", "", map[string]string{"refresh_token": next})
	must(t, nil, code, "Unauthenticated")

	_, again := login(t, email, pw)
	resp, code := call(t, authAddr, "auth.v1.AuthService/RevokeToken", "", map[string]string{"refresh_token": again})
	must(t, resp, code, "OK")
	_, code = call(t, authAddr, "auth.v1.AuthService/RefreshToken", "", map[string]string{"refresh_token": again})
	must(t, nil, code, "Unauthenticated")

	// Only the masked field is written.
	resp, code = call(t, userAddr, "user.v1.UserService/UpdateUser", access,
		map[string]any{"id": id, "display_name": "Ada L.", "update_mask": map[string]any{"paths": []string{"display_name"}}})
	if must(t, resp, code, "OK"); str(resp, "user", "displayName") != "Ada L." || str(resp, "user", "email") != email {
		t.Fatalf("UpdateUser = %v", resp)
	}
	// Changing the password takes the current one and ends every session.
	resp, code = call(t, userAddr, "user.v1.UserService/ChangePassword", access,
		map[string]string{"id": id, "current_password": pw, "new_password": pw + " staple"})
	must(t, resp, code, "OK")
	_, code = call(t, userAddr, "user.v1.UserService/GetUser", access, map[string]string{"id": id})
	must(t, nil, code, "Unauthenticated")
	// Log in with the new password, then log out everywhere.
	access, refresh = login(t, email, pw+" staple")
	resp, code = call(t, authAddr, "auth.v1.AuthService/RevokeAllSessions", access, map[string]string{"user_id": id})
	must(t, resp, code, "OK")
	_, code = call(t, authAddr, "auth.v1.AuthService/RefreshToken", "", map[string]string{"refresh_token": refresh})
	must(t, nil, code, "Unauthenticated")
	_, code = call(t, userAddr, "user.v1.UserService/GetUser", access, map[string]string{"id": id})
	must(t, nil, code, "Unauthenticated")
}

func TestNonAdminCannotReadAnotherUser(t *testing.T) {
	a, b := unique("alice"), unique("bob")
	signup(t, a, "orange kite seven")
	bobID := signup(t, b, "silver moth eleven")
	access, _ := login(t, a, "orange kite seven")
	_, code := call(t, userAddr, "user.v1.UserService/GetUser", access, map[string]string{"id": bobID})
	must(t, nil, code, "PermissionDenied")
}

func TestHelmTest(t *testing.T) {
	out, err := exec.Command(helm, "test", release, "-n", namespace, "--timeout", "2m").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Succeeded") {
		t.Fatalf("helm test: %v\n%s", err, out)
	}
}

// TestPodsRestrictedAndStable: the namespaces enforce Pod Security
// restricted, every pod in them passes it (asked of the API server with a
// server-side dry run, which lists violating pods), and no container of
// Gatehouse has restarted.
func TestPodsRestrictedAndStable(t *testing.T) {
	for _, ns := range []string{namespace, monitoring} {
		out, err := exec.Command(kubectl, "get", "namespace", ns, "-o", "jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}").Output()
		if err != nil || string(out) != "restricted" {
			t.Fatalf("namespace %s enforce label = %q, %v; want restricted", ns, out, err)
		}
		cmd := exec.Command(kubectl, "label", "--dry-run=server", "--overwrite", "namespace", ns,
			"pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/enforce-version=latest")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("server-side dry run of the restricted label on %s: %v: %s", ns, err, stderr.String())
		}
		if strings.Contains(stderr.String(), "violate") {
			t.Errorf("pods in namespace %s violate Pod Security restricted:\n%s", ns, stderr.String())
		}
	}
	all := pods(t, "")
	if len(all) < 2 {
		t.Fatalf("%d pods in %s, want at least the two services", len(all), namespace)
	}
	for _, p := range all {
		if p.Phase != "Running" && p.Phase != "Succeeded" {
			t.Errorf("pod %s is %s", p.Name, p.Phase)
		}
		if p.Restarts != 0 {
			t.Errorf("pod %s restarted %d times", p.Name, p.Restarts)
		}
	}
}
