package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/gatehouse-dev/gatehouse/hack/localproc"
	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
)

const (
	adminEmail    = "admin@example.com"
	adminPassword = "connbench keeps the keys"
)

// env is one run's processes: the Auth service, started once to sign the
// token every call carries, and the User service, started afresh for each
// scenario so no scenario inherits another's heap.
type env struct {
	o                  options
	work, bins         string
	serverCPU          string
	pinned             bool
	auth               *localproc.Proc
	stopSink           func()
	userGRPC, userHTTP string
	userEnv            []string
	user               *localproc.Proc
	starts             int
	token, adminID     string
	// What the first User service reported: its descriptor limit and the
	// MAX_CONCURRENT_STREAMS of its SETTINGS frame.
	serverNoFile string
	maxStreams   uint32
	// gc is the User service's garbage-collector settings, from its
	// /metrics: they decide how far past what it holds its heap grows
	// under load.
	gc      string
	metrics *http.Client
}

// newEnv builds the services with the flags `make build` uses and starts
// them as hack/bench does: production settings, SQLite in a temporary
// directory, tracing at a 10% parent-based sample exported to a local
// sink, loopback only.
func newEnv(ctx context.Context, o options) (_ *env, err error) {
	e := &env{o: o, metrics: &http.Client{Timeout: 5 * time.Second}}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.work, err = os.MkdirTemp("", "gatehouse-connbench"); err != nil {
		return nil, err
	}
	step("building the services with production flags")
	e.bins = filepath.Join(e.work, "bin")
	if err := localproc.Build(o.root, e.bins, "grpcnotrace", "./services/user", "./services/auth"); err != nil {
		return nil, err
	}
	if o.pin && runtime.NumCPU() >= 2 {
		e.serverCPU = strconv.Itoa(runtime.NumCPU() - 1)
		var set unix.CPUSet
		for i := 0; i < runtime.NumCPU()-1; i++ {
			set.Set(i)
		}
		e.pinned = unix.SchedSetaffinity(0, &set) == nil
	}
	sink, stopSink, err := otlpSink()
	if err != nil {
		return nil, err
	}
	e.stopSink = stopSink
	keys := filepath.Join(e.work, "keys")
	if err := localproc.WriteKey(keys, "connbench"); err != nil {
		return nil, err
	}
	common := []string{
		"LOG_LEVEL=warn", "DRAIN_DELAY=0s",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + sink, "OTEL_EXPORTER_OTLP_INSECURE=true",
		"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.1",
	}
	ports, err := localproc.FreePorts(4)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	e.userGRPC, e.userHTTP = addr(2), addr(3)

	step("starting auth")
	e.auth, err = localproc.Start(filepath.Join(e.bins, "auth"), nil, append(append([]string{}, common...),
		"GRPC_ADDR="+addr(0), "HTTP_ADDR="+addr(1), "DATABASE_URL=sqlite://"+filepath.Join(e.work, "auth.db"),
		"JWT_SIGNING_KEYS_DIR="+keys, "USER_SERVICE_ADDR="+e.userGRPC), e.serverCPU, filepath.Join(e.work, "auth.log"))
	if err != nil {
		return nil, err
	}
	if _, err := localproc.WaitServing(addr(0), e.auth); err != nil {
		return nil, fmt.Errorf("auth: %w (log %s)", err, e.auth.LogPath)
	}
	e.userEnv = append(append(append([]string{}, common...),
		"GRPC_ADDR="+e.userGRPC, "HTTP_ADDR="+e.userHTTP, "DATABASE_URL=sqlite://"+filepath.Join(e.work, "user.db"),
		"JWKS_URL=http://"+addr(1)+"/.well-known/jwks.json",
		"BOOTSTRAP_ADMIN_EMAIL="+adminEmail, "BOOTSTRAP_ADMIN_PASSWORD="+adminPassword,
		// Only for /debug/pprof/heap?gc=1 before each reading (snapshot);
		// no profile is taken.
		"PPROF_ENABLED=true"), o.serverEnv...)
	if err := e.startUser(); err != nil {
		return nil, err
	}
	defer e.stopUser()

	step("logging in and reading the server's limits")
	conn, err := grpc.NewClient(addr(0), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	auth := authv1.NewAuthServiceClient(conn)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	login, err := auth.Login(cctx, &authv1.LoginRequest{Email: adminEmail, Password: adminPassword})
	if err != nil {
		return nil, fmt.Errorf("admin login: %w", err)
	}
	valid, err := auth.ValidateToken(cctx, &authv1.ValidateTokenRequest{AccessToken: login.GetAccessToken()})
	if err != nil {
		return nil, err
	}
	e.token, e.adminID = login.GetAccessToken(), valid.GetSubject()
	e.serverNoFile = openFilesLimit(e.user.PID())
	e.gc = "unknown"
	if v, err := scrape(cctx, e.metrics, e.userHTTP, "go_gc_gogc_percent", "go_gc_gomemlimit_bytes"); err == nil {
		limit := "none"
		if v[1] < 1<<62 { // math.MaxInt64 when unset
			limit = fmt.Sprintf("%.0f MiB", v[1]/(1<<20))
		}
		e.gc = fmt.Sprintf("GOGC %.0f, GOMEMLIMIT %s", v[0], limit)
	}
	probe, err := openIdle(cctx, e.userGRPC, 1)
	if err != nil {
		return nil, fmt.Errorf("HTTP/2 handshake: %w", err)
	}
	e.maxStreams = probe.maxStreams
	probe.close()
	return e, nil
}

// startUser starts a fresh User service on the same ports and database.
func (e *env) startUser() error {
	e.starts++
	p, err := localproc.Start(filepath.Join(e.bins, "user"), nil, e.userEnv, e.serverCPU, filepath.Join(e.work, fmt.Sprintf("user-%d.log", e.starts)))
	if err != nil {
		return err
	}
	e.user = p
	if _, err := localproc.WaitServing(e.userGRPC, p); err != nil {
		// The work directory goes at the end of the run; its log's last
		// lines go into the error.
		return fmt.Errorf("user: %w; its log ends:\n%s", err, tail(p.LogPath, 20))
	}
	return nil
}

func (e *env) stopUser() {
	if e.user != nil {
		e.user.Stop()
		e.user = nil
	}
}

func (e *env) close() {
	e.stopUser()
	e.metrics.CloseIdleConnections()
	if e.auth != nil {
		e.auth.Stop()
	}
	if e.stopSink != nil {
		e.stopSink()
	}
	if e.work != "" {
		_ = os.RemoveAll(e.work)
	}
}

// tail is the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// authCtx carries the admin's access token.
func (e *env) authCtx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+e.token)
}

// userClients are n gRPC connections to the User service, connected.
type userClients struct {
	conns   []*grpc.ClientConn
	clients []userv1.UserServiceClient
}

// dialUsers opens n connections to the User service, each connected
// (one health check through it) before it returns.
func (e *env) dialUsers(ctx context.Context, n int) (*userClients, error) {
	c := &userClients{}
	for range n {
		cc, err := grpc.NewClient(e.userGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			c.close()
			return nil, err
		}
		c.conns = append(c.conns, cc)
		c.clients = append(c.clients, userv1.NewUserServiceClient(cc))
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = healthpb.NewHealthClient(cc).Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err != nil {
			c.close()
			return nil, fmt.Errorf("connecting to the User service: %w", err)
		}
	}
	return c, nil
}

func (c *userClients) close() {
	for _, cc := range c.conns {
		_ = cc.Close()
	}
}

// Mem is the User service's memory at one moment: what the kernel counts
// (/proc/PID/status) and what the Go runtime says it holds (/metrics).
type Mem struct {
	RSSMiB  float64 `json:"rss_mib"`
	AnonMiB float64 `json:"rss_anon_mib"`
	// Sockets are the descriptors of the server that are sockets:
	// listeners, the load's connections and every idle one.
	Sockets      int     `json:"sockets"`
	Goroutines   float64 `json:"goroutines"`
	HeapInuseMiB float64 `json:"go_heap_inuse_mib"`
	StackMiB     float64 `json:"go_stack_inuse_mib"`
}

// snapshot reads the User service's memory right after a garbage
// collection it is made to run (/debug/pprof/heap?gc=1), so the reading
// is what the service holds, not how far its heap had grown towards the
// next cycle when the reading happened to come.
func (e *env) snapshot(ctx context.Context) Mem {
	if err := get(ctx, e.metrics, "http://"+e.userHTTP+"/debug/pprof/heap?gc=1", io.Discard); err != nil {
		fmt.Println("  forcing a GC:", err)
	}
	pid := e.user.PID()
	m := Mem{RSSMiB: localproc.RSSMiB(pid), AnonMiB: localproc.StatusField(pid, "RssAnon"), Sockets: sockets(pid)}
	// Read after /proc: gathering the metrics allocates in the server.
	v, err := scrape(ctx, e.metrics, e.userHTTP, "go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes")
	if err != nil {
		fmt.Println("  /metrics:", err)
		return m
	}
	m.Goroutines, m.HeapInuseMiB, m.StackMiB = v[0], v[1]/(1<<20), v[2]/(1<<20)
	return m
}

// get copies the body of a GET of url to w.
func get(ctx context.Context, client *http.Client, url string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// sockets counts the process's descriptors that are sockets.
func sockets(pid int) int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	n := 0
	for _, de := range ents {
		if l, err := os.Readlink(filepath.Join(dir, de.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// waitSockets polls until ok(sockets of the User service) or timeout, and
// returns the last count.
func (e *env) waitSockets(ok func(int) bool, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		n := sockets(e.user.PID())
		if ok(n) || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// openFilesLimit is the "Max open files" line of /proc/PID/limits: soft
// and hard.
func openFilesLimit(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) >= 2 {
				return f[0] + " soft, " + f[1] + " hard"
			}
		}
	}
	return "unknown"
}

// scrape reads gauges without labels from the Prometheus text at
// http://addr/metrics, in the order named.
func scrape(ctx context.Context, client *http.Client, addr string, names ...string) ([]float64, error) {
	var body bytes.Buffer
	if err := get(ctx, client, "http://"+addr+"/metrics", &body); err != nil {
		return nil, err
	}
	out := make([]float64, len(names))
	found := 0
	for _, line := range strings.Split(body.String(), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		for i, n := range names {
			if name == n {
				var err error
				if out[i], err = strconv.ParseFloat(strings.TrimSpace(val), 64); err != nil {
					return nil, fmt.Errorf("%s: %w", n, err)
				}
				found++
			}
		}
	}
	if found != len(names) {
		return nil, errors.New("not every gauge in /metrics: " + strings.Join(names, ", "))
	}
	return out, nil
}

// traceSink is a local OTLP/gRPC receiver that drops spans, so tracing
// costs the service what it costs in production without a collector.
type traceSink struct {
	collectortrace.UnimplementedTraceServiceServer
}

func (traceSink) Export(context.Context, *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func otlpSink() (string, func(), error) {
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	s := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(s, traceSink{})
	go func() { _ = s.Serve(l) }()
	return l.Addr().String(), s.Stop, nil
}
