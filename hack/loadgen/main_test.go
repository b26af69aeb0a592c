package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gatehouse-dev/gatehouse/hack/localproc"
	"github.com/gatehouse-dev/gatehouse/hack/pki"
	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
)

// hack/ cannot import services/internal (Go's internal rule), so these
// tests run the real service binaries on loopback, wired as
// services/internal/inprocess wires them: Auth signs with a key
// directory, User verifies through Auth's JWKS over HTTP.

// binDir holds the service binaries TestMain builds once for all tests.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "loadgen-bin")
	if err != nil {
		panic(err)
	}
	binDir = dir
	if err := localproc.Build(filepath.Join("..", ".."), dir, ""); err != nil {
		fmt.Fprintf(os.Stderr, "building the services: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		// Every run closes its connections and waits for its calls; a
		// goroutine left behind would be a call the report missed.
		if err := goleak.Find(goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

type services struct {
	userAddr, authAddr string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func writeKey(t *testing.T, dir string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "2026-01-01.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startServices runs Auth and User and returns once both report SERVING.
func startServices(t *testing.T) services {
	t.Helper()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	writeKey(t, keys)
	userGRPC, userHTTP, authGRPC, authHTTP := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	common := []string{"LOG_LEVEL=warn", "DRAIN_DELAY=0s", "READINESS_INTERVAL=100ms"}
	startProcess(t, dir, "auth", append(common,
		"GRPC_ADDR="+authGRPC, "HTTP_ADDR="+authHTTP,
		"DATABASE_URL=sqlite://"+filepath.Join(dir, "auth.db"),
		"JWT_SIGNING_KEYS_DIR="+keys, "USER_SERVICE_ADDR="+userGRPC,
		// One load user logging in five times a second from one address
		// is over the per-address default (100 attempts a minute, every
		// attempt counted); the e2e deployment lifts it the same way.
		"LOGIN_RATE_PER_ADDR=0",
	))
	startProcess(t, dir, "user", append(common,
		"GRPC_ADDR="+userGRPC, "HTTP_ADDR="+userHTTP,
		"DATABASE_URL=sqlite://"+filepath.Join(dir, "user.db"),
		"JWKS_URL=http://"+authHTTP+"/.well-known/jwks.json",
	))
	waitServing(t, authGRPC)
	waitServing(t, userGRPC)
	return services{userAddr: "dns:///" + userGRPC, authAddr: "dns:///" + authGRPC}
}

func startProcess(t *testing.T, dir, name string, env []string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, name))
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s log:\n%s", name, b)
			}
		}
	})
}

func waitServing(t *testing.T, addr string) {
	t.Helper()
	// grpc-go's reconnect backoff starts at 1s; poll much faster so the
	// tests wait for the server, not the backoff.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1, MaxDelay: 10 * time.Millisecond},
			MinConnectTimeout: 200 * time.Millisecond,
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		r, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not SERVING within 15s: %v, %v", addr, r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// decodeOne checks stdout holds exactly one JSON object of T's shape and
// nothing else, as the e2e test will read it.
func decodeOne[T any](t *testing.T, stdout *bytes.Buffer) T {
	t.Helper()
	raw := stdout.String()
	dec := json.NewDecoder(stdout)
	dec.DisallowUnknownFields()
	var v T
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("stdout is not one report: %v\n%s", err, raw)
	}
	if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
		t.Fatalf("stdout holds more than one JSON value (%v):\n%s", err, raw)
	}
	return v
}

func TestSteady(t *testing.T) {
	svc := startServices(t)
	for _, tt := range []struct {
		name        string
		args        []string
		cancelAfter time.Duration // 0: run to the end
		check       func(t *testing.T, r steadyReport)
	}{
		{
			name: "healthy services fail no call",
			args: []string{"-rate", "50", "-duration", "2s", "-login-every", "10"},
			check: func(t *testing.T, r steadyReport) {
				if r.Planned != 100 || r.Sent < 90 || r.Sent > 110 {
					t.Errorf("sent %d of %d planned, want 100 ±10%%", r.Sent, r.Planned)
				}
				if login := r.ByMethod[methodLogin]; login == nil || login.Sent < r.Sent/10-1 || login.Sent > r.Sent/10+1 {
					t.Errorf("Login calls = %+v, want about %d", login, r.Sent/10)
				}
				if r.Interrupted || r.DurationS < 1.9 || r.DurationS > 5 {
					t.Errorf("interrupted = %t, duration_s = %v, want a complete run of about 2s", r.Interrupted, r.DurationS)
				}
			},
		},
		{
			// SIGTERM in a pod: stop launching, let the calls in flight
			// finish rather than cancel them into failures, and report.
			name:        "interrupted run reports what it sent",
			args:        []string{"-rate", "50", "-duration", "30s", "-login-every", "5"},
			cancelAfter: 1500 * time.Millisecond,
			check: func(t *testing.T, r steadyReport) {
				if !r.Interrupted || r.Sent == 0 || r.Sent >= r.Planned {
					t.Errorf("interrupted = %t, sent %d of %d, want an interrupted partial run", r.Interrupted, r.Sent, r.Planned)
				}
				if r.DurationS > 5 {
					t.Errorf("duration_s = %v: the run did not stop at the signal", r.DurationS)
				}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelAfter > 0 {
				time.AfterFunc(tt.cancelAfter, cancel)
			}
			var stdout, stderr bytes.Buffer
			args := append([]string{"-user-addr", svc.userAddr, "-auth-addr", svc.authAddr}, tt.args...)
			if err := run(ctx, args, &stdout, &stderr); err != nil {
				t.Fatalf("run: %v\nstderr:\n%s", err, &stderr)
			}
			r := decodeOne[steadyReport](t, &stdout)
			if r.Scenario != scenarioSteady || r.Failed != 0 || r.OK != r.Sent || len(r.FirstErrors) != 0 {
				t.Errorf("report = %+v, want every call OK", r)
			}
			get, login := r.ByMethod[methodGetUser], r.ByMethod[methodLogin]
			if get == nil || login == nil || get.Sent+login.Sent != r.Sent || get.Codes["OK"] != get.Sent || login.Codes["OK"] != login.Sent {
				t.Errorf("by_method = GetUser %+v, Login %+v", get, login)
			}
			if l := r.LatencyMS; l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max {
				t.Errorf("latency_ms = %+v", l)
			}
			tt.check(t, r)
		})
	}
}

// TestSteadyJSONShape pins the field names services/e2e reads.
func TestSteadyJSONShape(t *testing.T) {
	tl := newTally()
	tl.add(result{method: methodGetUser, code: "OK", latency: time.Millisecond})
	b, err := json.Marshal(tl.report(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scenario", "sent", "ok", "failed", "by_method", "latency_ms", "first_errors", "duration_s"} {
		if _, ok := top[k]; !ok {
			t.Errorf("report lacks %q: %s", k, b)
		}
	}
	const want = `{"GetUser":{"sent":1,"ok":1,"failed":0,"codes":{"OK":1}}}`
	if got := string(top["by_method"]); got != want {
		t.Errorf("by_method = %s, want %s", got, want)
	}
	if got := string(top["latency_ms"]); got != `{"p50":1,"p99":1,"max":1}` {
		t.Errorf("latency_ms = %s", got)
	}
	if got := string(top["first_errors"]); got != `[]` {
		t.Errorf("first_errors = %s, want [] rather than null", got)
	}
}

func TestRefreshStorm(t *testing.T) {
	t.Parallel()
	svc := startServices(t)
	var stdout, stderr bytes.Buffer
	args := []string{"-user-addr", svc.userAddr, "-auth-addr", svc.authAddr, "-scenario", "refresh-storm", "-clients", "8", "-steps", "3"}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, &stderr)
	}
	r := decodeOne[stormReport](t, &stdout)
	if r.Scenario != scenarioStorm || r.Clients != 8 || len(r.Steps) != 3 || r.Interrupted {
		t.Fatalf("report = %+v", r)
	}
	for i, s := range r.Steps {
		others := 0
		for _, n := range s.Codes {
			others += n
		}
		if s.OK != 1 || others != 7 || !s.WinnerRefusedAfter || s.LoginError != "" {
			t.Errorf("step %d = %+v, want 1 OK, 7 refused, winner refused after", i, s)
		}
	}
	if r.StepsExactlyOneOK != 3 || r.StepsWinnerRefused != 3 || len(r.FirstErrors) != 0 {
		t.Errorf("summary: exactly_one_ok %d, winner_refused %d, first_errors %q", r.StepsExactlyOneOK, r.StepsWinnerRefused, r.FirstErrors)
	}
}

// TestRefreshRate: every client rotates its own session back to back;
// each refresh presents the token the last one returned, so none is
// refused, and the report has the rate and the latencies.
func TestRefreshRate(t *testing.T) {
	t.Parallel()
	svc := startServices(t)
	var stdout, stderr bytes.Buffer
	args := []string{"-user-addr", svc.userAddr, "-auth-addr", svc.authAddr, "-scenario", "refresh-rate", "-clients", "4", "-duration", "1s"}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, &stderr)
	}
	r := decodeOne[rotateReport](t, &stdout)
	if r.Scenario != scenarioRotate || r.Clients != 4 || r.LoginError != "" || len(r.Codes) != 0 || len(r.FirstErrors) != 0 {
		t.Fatalf("report = %+v", r)
	}
	if r.OK < 4 || r.PerSecond <= 0 || r.P50ms <= 0 || r.P99ms < r.P50ms {
		t.Errorf("OK %d, %.1f/s, p50 %.2f ms, p99 %.2f ms: want at least one refresh per client and sane figures", r.OK, r.PerSecond, r.P50ms, r.P99ms)
	}
}

// TestProbe: one Login from the cluster's point of view: OK with the
// services up and the right password, Unauthenticated with a wrong one,
// Unavailable (after the retries) when nothing listens at the Auth address.
func TestProbe(t *testing.T) {
	t.Parallel()
	svc := startServices(t)
	var warm bytes.Buffer
	email := uniqueEmail()
	// A steady run of one call creates the user the probes log in as.
	if err := run(context.Background(), []string{"-user-addr", svc.userAddr, "-auth-addr", svc.authAddr,
		"-email", email, "-rate", "10", "-duration", "100ms"}, &warm, io.Discard); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, authAddr, password, code string
	}{
		{"up", svc.authAddr, "steady tide orchard", "OK"},
		{"wrong password", svc.authAddr, "not the password", "Unauthenticated"},
		{"nothing listening", "dns:///" + freeAddr(t), "steady tide orchard", "Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			args := []string{"-user-addr", svc.userAddr, "-auth-addr", tt.authAddr, "-scenario", "probe",
				"-email", email, "-password", tt.password, "-timeout", "3s"}
			if err := run(context.Background(), args, &stdout, io.Discard); err != nil {
				t.Fatal(err)
			}
			r := decodeOne[probeReport](t, &stdout)
			if r.Scenario != scenarioProbe || r.Method != "Login" || r.Code != tt.code {
				t.Fatalf("report = %+v, want code %s", r, tt.code)
			}
		})
	}
}

// TestTallyReport feeds synthetic results: 100 sent calls with latencies
// 1..100 ms (every 10th a Login, the last two Unavailable), then 25 the
// client refused and one DeadlineExceeded after them.
func TestTallyReport(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC)
	tl := newTally()
	for i := 100; i >= 1; i-- { // out of order: percentiles must sort
		r := result{method: methodGetUser, code: "OK", at: at, latency: time.Duration(i) * time.Millisecond}
		if i%10 == 0 {
			r.method = methodLogin
		}
		if i >= 99 {
			r.code, r.message = "Unavailable", fmt.Sprintf("boom %d", i)
		}
		tl.add(r)
	}
	for range 25 {
		tl.add(result{method: methodGetUser, code: codeClientOverload, at: at, message: "200 calls already in flight"})
	}
	tl.add(result{method: methodGetUser, code: "DeadlineExceeded", at: at, latency: 5001 * time.Millisecond, message: "context deadline exceeded"})
	r := tl.report(2500 * time.Millisecond)

	if r.Sent != 126 || r.OK != 98 || r.Failed != 28 || r.DurationS != 2.5 {
		t.Errorf("sent/ok/failed/duration = %d/%d/%d/%v, want 126/98/28/2.5", r.Sent, r.OK, r.Failed, r.DurationS)
	}
	wantMethods := map[string]methodReport{
		methodGetUser: {Sent: 116, OK: 89, Failed: 27, Codes: map[string]int{"OK": 89, "Unavailable": 1, codeClientOverload: 25, "DeadlineExceeded": 1}},
		methodLogin:   {Sent: 10, OK: 9, Failed: 1, Codes: map[string]int{"OK": 9, "Unavailable": 1}},
	}
	for name, want := range wantMethods {
		got := r.ByMethod[name]
		if got == nil || got.Sent != want.Sent || got.OK != want.OK || got.Failed != want.Failed || fmt.Sprint(got.Codes) != fmt.Sprint(want.Codes) {
			t.Errorf("%s = %+v, want %+v", name, got, want)
		}
	}
	// Client-overload calls never reached the wire: no latency.
	if want := (latencyReport{P50: 51, P99: 100, Max: 5001}); r.LatencyMS != want {
		t.Errorf("latency_ms = %+v, want %+v", r.LatencyMS, want)
	}
	// The first of each kind, at most maxErrorsPerKind of one kind: the
	// DeadlineExceeded after 25 overloads is still there.
	wantErrors := []string{
		"2026-03-01T12:00:00.000000005Z Login Unavailable after 100ms: boom 100",
		"2026-03-01T12:00:00.000000005Z GetUser Unavailable after 99ms: boom 99",
	}
	for range maxErrorsPerKind {
		wantErrors = append(wantErrors, "2026-03-01T12:00:00.000000005Z GetUser client-overload after 0s: 200 calls already in flight")
	}
	wantErrors = append(wantErrors, "2026-03-01T12:00:00.000000005Z GetUser DeadlineExceeded after 5.001s: context deadline exceeded")
	if !slices.Equal(r.FirstErrors, wantErrors) {
		t.Errorf("first_errors =\n  %s\nwant\n  %s", strings.Join(r.FirstErrors, "\n  "), strings.Join(wantErrors, "\n  "))
	}
}

func TestPercentile(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		var d []time.Duration
		for _, v := range vs {
			d = append(d, time.Duration(v)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tt := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value is every percentile", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 99, 99 * time.Millisecond},
		{"max of 1..100", ms(hundred...), 100, 100 * time.Millisecond},
		{"p99 of ten is the slowest", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"p50 of ten", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 50, 5 * time.Millisecond},
		{"p0 is the fastest", ms(3, 4), 0, 3 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

// TestScheduleIsOpenLoop: calls that never return must not slow the
// schedule; the calls beyond -max-in-flight fail as client-overload, on
// time, and the run still waits for the ones in flight.
func TestScheduleIsOpenLoop(t *testing.T) {
	t.Parallel()
	s := schedule{rate: 100, duration: 300 * time.Millisecond, maxInFlight: 5, progressEvery: time.Hour}
	unblock := make(chan struct{})
	time.AfterFunc(600*time.Millisecond, func() { close(unblock) })
	tl := newTally()
	start := time.Now()
	call := func(m string) result {
		<-unblock
		return outcome(m, time.Now(), nil)
	}
	elapsed, interrupted := s.run(context.Background(), func(int) string { return methodGetUser }, call, tl, io.Discard)
	r := tl.report(elapsed)
	if interrupted || r.Sent != 30 || r.OK != 5 || r.ByMethod[methodGetUser].Codes[codeClientOverload] != 25 {
		t.Fatalf("report = %+v (interrupted %t), want 30 sent: 5 OK, 25 client-overload", r, interrupted)
	}
	if elapsed < 600*time.Millisecond {
		t.Errorf("returned after %s, before the calls in flight finished", elapsed)
	}
	if got := r.FirstErrors[len(r.FirstErrors)-1]; !strings.Contains(got, codeClientOverload) {
		t.Errorf("last first_error = %q", got)
	}
	for _, e := range r.FirstErrors {
		ts, err := time.Parse(time.RFC3339Nano, strings.Fields(e)[0])
		if err != nil {
			t.Fatal(err)
		}
		if late := ts.Sub(start); late > 450*time.Millisecond {
			t.Errorf("overload recorded %s after start: the schedule waited for blocked calls", late)
		}
	}
}

func TestScheduleStopsOnCancel(t *testing.T) {
	t.Parallel()
	s := schedule{rate: 100, duration: 10 * time.Second, maxInFlight: 10, progressEvery: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	tl := newTally()
	elapsed, interrupted := s.run(ctx, func(int) string { return methodGetUser }, func(m string) result { return outcome(m, time.Now(), nil) }, tl, io.Discard)
	if sent, _ := tl.counts(); !interrupted || sent < 10 || sent > 40 || elapsed > time.Second {
		t.Errorf("interrupted %t after %s with %d sent, want a stop at about 200ms with about 20 sent", interrupted, elapsed, sent)
	}
}

// TestServiceConfig guards the documented policy: grpc-go ignores method
// names that match nothing, so a typo would silently turn retries off.
func TestServiceConfig(t *testing.T) {
	var sc struct {
		LoadBalancingConfig []map[string]json.RawMessage `json:"loadBalancingConfig"`
		MethodConfig        []struct {
			Name        []struct{ Service, Method string } `json:"name"`
			RetryPolicy struct {
				MaxAttempts          int      `json:"maxAttempts"`
				RetryableStatusCodes []string `json:"retryableStatusCodes"`
			} `json:"retryPolicy"`
		} `json:"methodConfig"`
	}
	if err := json.Unmarshal([]byte(serviceConfig), &sc); err != nil {
		t.Fatal(err)
	}
	if len(sc.LoadBalancingConfig) != 1 || sc.LoadBalancingConfig[0]["round_robin"] == nil {
		t.Errorf("loadBalancingConfig = %v, want round_robin", sc.LoadBalancingConfig)
	}
	descs := map[string]grpc.ServiceDesc{
		userv1.UserService_ServiceDesc.ServiceName: userv1.UserService_ServiceDesc,
		authv1.AuthService_ServiceDesc.ServiceName: authv1.AuthService_ServiceDesc,
	}
	var retried []string
	for _, mc := range sc.MethodConfig {
		if mc.RetryPolicy.MaxAttempts != 4 || !slices.Equal(mc.RetryPolicy.RetryableStatusCodes, []string{"UNAVAILABLE"}) {
			t.Errorf("retryPolicy = %+v", mc.RetryPolicy)
		}
		for _, n := range mc.Name {
			desc, ok := descs[n.Service]
			if !ok || !slices.ContainsFunc(desc.Methods, func(m grpc.MethodDesc) bool { return m.MethodName == n.Method }) {
				t.Errorf("service config names %s/%s, which does not exist", n.Service, n.Method)
			}
			retried = append(retried, n.Service+"/"+n.Method)
		}
	}
	slices.Sort(retried)
	if want := []string{"auth.v1.AuthService/Login", "auth.v1.AuthService/ValidateToken", "user.v1.UserService/GetUser"}; !slices.Equal(retried, want) {
		t.Errorf("retried methods = %v, want %v (never RefreshToken)", retried, want)
	}
	conn, err := grpc.NewClient("passthrough:///unused", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(serviceConfig))
	if err != nil {
		t.Fatalf("grpc rejects the service config: %v", err)
	}
	_ = conn.Close()
	// The servers disconnect clients pinging more often than
	// GRPC_KEEPALIVE_MIN_TIME (10s by default).
	if k := keepaliveParams(); k.Time < 10*time.Second {
		t.Errorf("keepalive Time %s is below the servers' enforcement MinTime", k.Time)
	}
}

func TestBadFlags(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown scenario", []string{"-scenario", "bogus"}, "-scenario must be"},
		{"zero rate", []string{"-rate", "0"}, "-rate must be positive"},
		{"negative rate", []string{"-rate", "-5"}, "-rate must be positive"},
		{"rate too low for the duration", []string{"-rate", "0.1", "-duration", "1s"}, "plans no call"},
		{"zero duration", []string{"-duration", "0s"}, "-duration must be positive"},
		{"zero login-every", []string{"-login-every", "0"}, "-login-every must be positive"},
		{"zero timeout", []string{"-timeout", "0s"}, "-timeout must be positive"},
		{"zero max-in-flight", []string{"-max-in-flight", "0"}, "-max-in-flight must be positive"},
		{"zero clients", []string{"-scenario", "refresh-storm", "-clients", "0"}, "-clients must be positive"},
		{"zero steps", []string{"-steps", "0"}, "-steps must be positive"},
		{"empty address", []string{"-user-addr", ""}, "must not be empty"},
		{"unknown flag", []string{"-nope"}, "not defined"},
		{"not a number", []string{"-rate", "lots"}, "invalid value"},
		{"stray argument", []string{"steady"}, "unexpected arguments"},
		{"cert without key", []string{"-cacert", "ca.crt", "-cert", "tls.crt"}, "-cert and -key are set together"},
		{"key without cert", []string{"-cacert", "ca.crt", "-key", "tls.key"}, "-cert and -key are set together"},
		{"client certificate without cacert", []string{"-cert", "tls.crt", "-key", "tls.key"}, "need -cacert"},
		{"servername without cacert", []string{"-servername", "gatehouse-auth"}, "need -cacert"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want a usage error containing %q", err, tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing: no report without a run", &stdout)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	a, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := parseFlags(nil, io.Discard)
	if a.userAddr != "dns:///localhost:50051" || a.authAddr != "dns:///localhost:50052" || a.scenario != scenarioSteady ||
		a.rate != 50 || a.duration != time.Minute || a.loginEvery != 10 || a.timeout != 5*time.Second ||
		a.maxInFlight != 200 || a.clients != 20 || a.steps != 20 || a.warmup != time.Minute {
		t.Errorf("defaults = %+v", a)
	}
	if !strings.HasPrefix(a.email, "loadgen-") || a.email == b.email {
		t.Errorf("default emails %q and %q, want distinct loadgen- addresses", a.email, b.email)
	}
}

// TestWarmUpFailsFast: with nothing listening the program gives up after
// the warm-up window with an error (exit 1), and prints no report.
func TestWarmUpFailsFast(t *testing.T) {
	t.Parallel()
	closed := freeAddr(t)
	cfg, err := parseFlags([]string{"-user-addr", closed, "-auth-addr", closed, "-timeout", "200ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.warmup = 1500 * time.Millisecond
	var stdout, stderr bytes.Buffer
	start := time.Now()
	err = execute(context.Background(), cfg, &stdout, &stderr)
	if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "warm-up did not succeed") {
		t.Errorf("err = %v, want a warm-up failure", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("gave up after %s, want about 1.5s", took)
	}
	if stdout.Len() != 0 || !strings.Contains(stderr.String(), "warm-up attempt 2") {
		t.Errorf("stdout = %q, stderr = %q: want no report and one line per attempt", &stdout, &stderr)
	}
}

// loginOK answers Login, all the probe scenario calls: enough to show a
// call went through the transport.
type loginOK struct {
	authv1.UnimplementedAuthServiceServer
}

func (loginOK) Login(context.Context, *authv1.LoginRequest) (*authv1.LoginResponse, error) {
	return &authv1.LoginResponse{AccessToken: "t"}, nil
}

// tlsServer serves loginOK over TLS on loopback with a certificate ca
// issued for names; clientAuth is what it asks of clients (ca verifies
// the certificates they present).
func tlsServer(t *testing.T, ca *pki.CA, clientAuth tls.ClientAuthType, names ...string) string {
	t.Helper()
	leaf, err := ca.Issue(pki.Request{Names: names})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.Cert)
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}, ClientAuth: clientAuth, ClientCAs: clientCAs,
	})))
	authv1.RegisterAuthServiceServer(s, loginOK{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return l.Addr().String()
}

// TestTLS: -cacert (and -cert/-key, -servername) make loadgen's
// connections speak TLS and verify the server; without -cacert they stay
// plaintext, which a TLS server refuses. Each run is one probe Login.
func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := pki.NewCA("loadgen test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *pki.CA, name string, names ...string) pki.Files {
		_, f, err := ca.IssueFiles(filepath.Join(dir, name), pki.Request{Names: names})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	client := issue(ca, "client", "loadgen-test-client")
	other, err := pki.NewCA("another CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherCA := issue(other, "other", "localhost").CA

	// The server's names: the address's IP, and a DNS name only
	// -servername can ask for.
	open := tlsServer(t, ca, tls.VerifyClientCertIfGiven, "gatehouse-auth", "127.0.0.1")
	mutual := tlsServer(t, ca, tls.RequireAndVerifyClientCert, "gatehouse-auth", "127.0.0.1")

	for _, tt := range []struct {
		name string
		addr string
		args []string
		code string // the probe's status; "" when run itself fails
		msg  string // in the probe's message, or in run's error
	}{
		{"-cacert verifies the address's host", open, []string{"-cacert", client.CA}, "OK", ""},
		{"-servername is verified instead", open, []string{"-cacert", client.CA, "-servername", "gatehouse-auth"}, "OK", ""},
		{"-servername the certificate lacks", open, []string{"-cacert", client.CA, "-servername", "gatehouse-user"}, "Unavailable", "valid for gatehouse-auth, not gatehouse-user"},
		{"-cacert of another CA", open, []string{"-cacert", otherCA}, "Unavailable", "certificate signed by unknown authority"},
		// The TLS server takes the HTTP/2 preface for a bad record and
		// hangs up.
		{"plaintext against TLS", open, nil, "Unavailable", "server preface"},
		{"client certificate where one is required", mutual, []string{"-cacert", client.CA, "-cert", client.Cert, "-key", client.Key}, "OK", ""},
		// TLS 1.3 clients finish their handshake before the server checks
		// their certificate: the refusal arrives as an alert or as a
		// broken pipe, whichever comes first.
		{"no client certificate where one is required", mutual, []string{"-cacert", client.CA}, "Unavailable", ""},
		{"-cacert file missing", open, []string{"-cacert", filepath.Join(dir, "missing.crt")}, "", "-cacert: open"},
		{"-cacert holding no certificate", open, []string{"-cacert", client.Key}, "", "no PEM certificate"},
		{"-cert and -key that do not match", mutual, []string{"-cacert", client.CA, "-cert", client.Cert, "-key", filepath.Join(dir, "other", "tls.key")}, "", "-cert " + client.Cert},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // the refused calls each spend the retries' backoff
			addr := "dns:///" + tt.addr
			args := append([]string{"-user-addr", addr, "-auth-addr", addr, "-scenario", "probe", "-timeout", "2s"}, tt.args...)
			var stdout bytes.Buffer
			err := run(context.Background(), args, &stdout, io.Discard)
			if tt.code == "" {
				// A file that cannot be used stops loadgen before any
				// call, as exit 1: the flags were well formed.
				if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.msg) || stdout.Len() != 0 {
					t.Fatalf("err = %v, stdout %q: want a failure to start (not a usage error) containing %q", err, &stdout, tt.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r := decodeOne[probeReport](t, &stdout); r.Code != tt.code || !strings.Contains(r.Message, tt.msg) {
				t.Fatalf("report = %+v, want code %s and a message containing %q", r, tt.code, tt.msg)
			}
		})
	}
}
