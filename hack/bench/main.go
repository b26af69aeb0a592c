package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/gatehouse-dev/gatehouse/hack/localproc"
	"github.com/gatehouse-dev/gatehouse/hack/pki"
	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
)

type options struct {
	duration, warmup time.Duration
	concurrency      int
	conns            int
	loginConcurrency int
	loginFlood       int
	out              string
	scenarios        *regexp.Regexp
	profile          string
	rounds           int
	serverEnv        []string
	tls              bool
	userPostgres     string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per scenario and round")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "discarded warm-up before each measurement")
	flag.IntVar(&o.concurrency, "concurrency", 16, "calls in flight")
	flag.IntVar(&o.conns, "conns", 4, "gRPC connections the calls share")
	flag.IntVar(&o.loginConcurrency, "login-concurrency", 50, "calls in flight for Login (argon2id memory test)")
	flag.IntVar(&o.loginFlood, "login-flood", 300, "calls in flight for Login past capacity, each retried at once when refused (as a flood does)")
	flag.StringVar(&o.out, "out", "bench-results", "directory for latest.json and latest.md")
	flag.Func("scenarios", "regular expression selecting scenarios by name (default all)", func(v string) (err error) {
		o.scenarios, err = regexp.Compile(v)
		return err
	})
	flag.StringVar(&o.profile, "profile", "", "directory for CPU and allocation profiles of each scenario's server(s), from an extra pass not counted in the figures (go tool pprof)")
	flag.IntVar(&o.rounds, "rounds", 3, "times each scenario is measured, each right after a baseline run; figures are medians")
	flag.Func("server-env", "KEY=VALUE added to the Gatehouse servers' environment, to try a setting (repeatable)", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		o.serverEnv = append(o.serverEnv, v)
		return nil
	})
	flag.StringVar(&o.userPostgres, "user-postgres", "", "PostgreSQL URL of an empty database for the User service processes, which then run as replicas "+
		"of one deployment (user cache kept correct by LISTEN/NOTIFY) instead of on SQLite")
	flag.BoolVar(&o.tls, "tls", false, "serve TLS on every server, the baseline too, with certificates from a throwaway CA the load generator trusts "+
		"(JWKS over https, Auth's client certificate to User, as in production), and say so in the results")
	flag.Parse()
	if o.rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench: -rounds must be at least 1")
		os.Exit(2)
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Result is one scenario's figures.
type Result struct {
	Scenario   string  `json:"scenario"`
	Calls      int64   `json:"calls"`
	Errors     int64   `json:"errors"`
	QPS        float64 `json:"qps"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	CPUPerCall float64 `json:"server_cpu_us_per_call"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// Refused counts calls answered ResourceExhausted, the server's fast
	// "no room, come back later": apart from errors, and apart from QPS,
	// which counts the calls answered OK. Their latency and the retry
	// delay their RetryInfo named are medians over the rounds.
	Refused      int64   `json:"refused,omitempty"`
	RefusedP50ms float64 `json:"refused_p50_ms,omitempty"`
	RefusedP99ms float64 `json:"refused_p99_ms,omitempty"`
	RetryAfterMs float64 `json:"retry_after_p50_ms,omitempty"`
	// PeakRSSByProcess splits PeakRSSMiB when a scenario has several servers.
	PeakRSSByProcess map[string]float64 `json:"peak_rss_mib_by_process,omitempty"`
	peaks            []float64
	Concurrency      int    `json:"concurrency"`
	Note             string `json:"note,omitempty"`

	// Set on summaries: medians over the rounds of each figure and of its
	// ratio to the baseline run just before it (1 for the baseline).
	QPSRatio float64  `json:"qps_ratio,omitempty"`
	P99Ratio float64  `json:"p99_ratio,omitempty"`
	CPURatio float64  `json:"cpu_ratio,omitempty"`
	Runs     []Result `json:"runs,omitempty"`
}

// summarize folds the rounds of one scenario into medians (peak RSS: the
// highest); pairs holds each run with its baseline, nil for the baseline.
func summarize(runs []Result, pairs [][2]Result) Result {
	med := func(f func(int) float64, n int) float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = f(i)
		}
		slices.Sort(v)
		if n%2 == 1 {
			return v[n/2]
		}
		return (v[n/2-1] + v[n/2]) / 2
	}
	s := Result{Scenario: runs[0].Scenario, Note: runs[0].Note, Concurrency: runs[0].Concurrency, Runs: runs,
		QPSRatio: 1, P99Ratio: 1, CPURatio: 1}
	for _, r := range runs {
		s.Calls += r.Calls
		s.Errors += r.Errors
		s.Refused += r.Refused
		s.PeakRSSMiB = max(s.PeakRSSMiB, r.PeakRSSMiB)
		for n, v := range r.PeakRSSByProcess {
			if s.PeakRSSByProcess == nil {
				s.PeakRSSByProcess = map[string]float64{}
			}
			s.PeakRSSByProcess[n] = max(s.PeakRSSByProcess[n], v)
		}
	}
	n := len(runs)
	s.QPS = med(func(i int) float64 { return runs[i].QPS }, n)
	s.P50ms = med(func(i int) float64 { return runs[i].P50ms }, n)
	s.P99ms = med(func(i int) float64 { return runs[i].P99ms }, n)
	s.CPUPerCall = med(func(i int) float64 { return runs[i].CPUPerCall }, n)
	if s.Refused > 0 {
		// Over the rounds that had refusals: a round without any has no
		// latency to count, not a latency of 0.
		var with []Result
		for _, r := range runs {
			if r.Refused > 0 {
				with = append(with, r)
			}
		}
		s.RefusedP50ms = med(func(i int) float64 { return with[i].RefusedP50ms }, len(with))
		s.RefusedP99ms = med(func(i int) float64 { return with[i].RefusedP99ms }, len(with))
		s.RetryAfterMs = med(func(i int) float64 { return with[i].RetryAfterMs }, len(with))
	}
	if pairs != nil {
		ratio := func(f func(Result) float64) float64 {
			var v []float64
			for _, p := range pairs {
				if b := f(p[1]); b != 0 { // a baseline run without calls has no ratio
					v = append(v, f(p[0])/b)
				}
			}
			if len(v) == 0 {
				return 0
			}
			return med(func(i int) float64 { return v[i] }, len(v))
		}
		s.QPSRatio = ratio(func(r Result) float64 { return r.QPS })
		s.P99Ratio = ratio(func(r Result) float64 { return r.P99ms })
		s.CPURatio = ratio(func(r Result) float64 { return r.CPUPerCall })
	}
	return s
}

// Report is everything one run measured.
type Report struct {
	Date      string             `json:"date"`
	Machine   string             `json:"machine"`
	GoVersion string             `json:"go_version"`
	Pinned    bool               `json:"pinned"`
	Rounds    int                `json:"rounds"`
	Results   []Result           `json:"results"`
	Startup   map[string]float64 `json:"start_to_serving_ms"`
	IdleRSS   map[string]float64 `json:"idle_rss_mib"`
	// IdleRSSAnon is the process's own memory within IdleRSS; the rest is
	// the binary's pages, mapped from the page cache.
	IdleRSSAnon map[string]float64 `json:"idle_rss_anon_mib"`
	Binaries    map[string]float64 `json:"binary_mib"`
	Images      map[string]string  `json:"images"`
	Spans       int64              `json:"spans_exported"`
	// TLS is what the load generator's connections negotiated in a -tls
	// run ("TLS 1.3, TLS_AES_128_GCM_SHA256"); absent: plaintext.
	TLS string `json:"tls,omitempty"`
	// UserDatabase is "postgres" with -user-postgres, else "sqlite".
	UserDatabase string `json:"user_database"`
}

func run(ctx context.Context, o options) error {
	work, err := os.MkdirTemp("", "gatehouse-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	rep := Report{
		Date: time.Now().UTC().Format(time.RFC3339), Machine: localproc.Machine(), GoVersion: runtime.Version(), Rounds: o.rounds,
		Startup: map[string]float64{}, IdleRSS: map[string]float64{}, IdleRSSAnon: map[string]float64{}, Binaries: map[string]float64{}, Images: map[string]string{},
	}

	step("building binaries with production flags")
	bins := filepath.Join(work, "bin")
	tags := "grpcnotrace"
	if o.tls {
		// The baseline's TLS server code (the services always have it).
		tags += ",benchtls"
	}
	if err := localproc.Build(".", bins, tags, "./services/user", "./services/auth", "./hack/bench/baseline"); err != nil {
		return err
	}
	for _, b := range []string{"user", "auth", "baseline"} {
		if fi, err := os.Stat(filepath.Join(bins, b)); err == nil {
			rep.Binaries[b] = mib(fi.Size())
		}
	}
	rep.Images = imageSizes()

	// Servers on the last CPU, this process on the others, when possible.
	serverCPU := ""
	if runtime.NumCPU() >= 2 {
		serverCPU = strconv.Itoa(runtime.NumCPU() - 1)
		var set unix.CPUSet
		for i := 0; i < runtime.NumCPU()-1; i++ {
			set.Set(i)
		}
		rep.Pinned = unix.SchedSetaffinity(0, &set) == nil
	}

	sink, spans, stopSink, err := otlpSink()
	if err != nil {
		return err
	}
	defer stopSink()

	keys := filepath.Join(work, "keys")
	if err := localproc.WriteKey(keys, "bench"); err != nil {
		return err
	}
	otel := []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + sink, "OTEL_EXPORTER_OTLP_INSECURE=true",
		"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.1",
	}
	common := append([]string{"LOG_LEVEL=warn", "DRAIN_DELAY=0s", "PPROF_ENABLED=" + strconv.FormatBool(o.profile != "")}, otel...)
	common = append(common, o.serverEnv...)
	ports, err := localproc.FreePorts(10)
	if err != nil {
		return err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	// The servers listen on addr; the load generator dials dial, which
	// with -tls is the name their certificates are verified for.
	dial := addr
	var tr *tlsRun // nil: plaintext
	if o.tls {
		step("issuing a throwaway CA and TLS certificates")
		if tr, err = newTLSRun(filepath.Join(work, "tls")); err != nil {
			return err
		}
		dial = func(i int) string { return "localhost:" + strconv.Itoa(ports[i]) }
	}

	procs := map[string]*localproc.Proc{}
	defer func() {
		for _, p := range procs {
			p.Stop()
		}
	}()
	start := func(name, bin string, args []string, env []string, grpcAddr, httpAddr string) error {
		step("starting " + name)
		p, err := localproc.Start(filepath.Join(bins, bin), args, env, serverCPU, filepath.Join(work, name+".log"))
		if err != nil {
			return err
		}
		p.HTTPAddr = httpAddr
		procs[name] = p
		var took time.Duration
		if tr != nil {
			took, err = localproc.WaitServingWith(grpcAddr, p, tr.creds)
		} else {
			took, err = localproc.WaitServing(grpcAddr, p)
		}
		if err != nil {
			return fmt.Errorf("%s: %w (log %s)", name, err, p.LogPath)
		}
		rep.Startup[name] = ms(took)
		time.Sleep(500 * time.Millisecond)
		rep.IdleRSS[name] = localproc.RSSMiB(p.PID())
		rep.IdleRSSAnon[name] = localproc.StatusField(p.PID(), "RssAnon")
		return nil
	}
	baselineArgs := []string{addr(0)}
	if tr != nil {
		f := tr.files["baseline"]
		baselineArgs = []string{addr(0), f.Cert, f.Key}
	}
	if err := start("baseline", "baseline", baselineArgs, nil, dial(0), ""); err != nil {
		return err
	}
	if err := start("auth", "auth", nil, append(append(append([]string{}, common...),
		"GRPC_ADDR="+addr(1), "HTTP_ADDR="+addr(2), "DATABASE_URL=sqlite://"+filepath.Join(work, "auth.db"),
		"JWT_SIGNING_KEYS_DIR="+keys, "USER_SERVICE_ADDR="+addr(3),
		// The Login scenarios log in to one account dozens of times a
		// second from one address, many at once: the attempt limits
		// (which count an attempt until it succeeds) would refuse most
		// of them, and what is measured is the hashing capacity.
		"LOGIN_RATE_PER_ADDR=0", "LOGIN_RATE_PER_ACCOUNT_ADDR=0", "LOGIN_RATE_PER_ACCOUNT=0"), tr.env("auth")...), dial(1), dial(2)); err != nil {
		return err
	}
	// Three User service processes differ only in their caches. They share
	// one SQLite file, which production never does (one writer); here only
	// "user" writes, while seeding, before any scenario reads. With
	// -user-postgres they share a PostgreSQL database, as replicas do.
	userDB := "sqlite://" + filepath.Join(work, "user.db")
	rep.UserDatabase = "sqlite"
	if o.userPostgres != "" {
		userDB = o.userPostgres
		rep.UserDatabase = "postgres"
	}
	jwks := "http://" + addr(2) + "/.well-known/jwks.json"
	if tr != nil {
		jwks = "https://" + dial(2) + "/.well-known/jwks.json"
	}
	userEnv := func(grpc, http int, caches ...string) []string {
		return append(append(append(append([]string{}, common...),
			"GRPC_ADDR="+addr(grpc), "HTTP_ADDR="+addr(http), "DATABASE_URL="+userDB,
			"JWKS_URL="+jwks,
			"BOOTSTRAP_ADMIN_EMAIL=admin@example.com", "BOOTSTRAP_ADMIN_PASSWORD=bench keeps the keys",
			// The seeding signs 50 users up from one address; the Login
			// scenarios verify passwords faster than the Auth service's
			// budget allows (limits off, as above).
			"SIGNUP_RATE_PER_ADDR=0", "VERIFY_PASSWORD_RATE=0"), caches...), tr.env("user")...)
	}
	if err := start("user", "user", nil, userEnv(3, 4), dial(3), dial(4)); err != nil {
		return err
	}
	if err := start("user-nocache", "user", nil, userEnv(5, 6, "TOKEN_CACHE_SIZE=0"), dial(5), dial(6)); err != nil {
		return err
	}
	if err := start("user-nousercache", "user", nil, userEnv(7, 8, "USER_CACHE_SIZE=0"), dial(7), dial(8)); err != nil {
		return err
	}

	creds := insecure.NewCredentials()
	if tr != nil {
		creds = tr.creds
	}
	c, err := newClients(o.conns, creds, dial(1), map[string]string{
		"baseline": dial(0), "user": dial(3), "user-nocache": dial(5), "user-nousercache": dial(7),
	})
	if err != nil {
		return err
	}
	defer c.close()

	step("seeding users and tokens")
	var authPeer peer.Peer
	login, err := c.auth[0].Login(ctx, &authv1.LoginRequest{Email: "admin@example.com", Password: "bench keeps the keys"}, grpc.Peer(&authPeer))
	if err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	adminCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+login.GetAccessToken())
	if tr != nil {
		var basePeer peer.Peer
		if _, err := c.users["baseline"][0].GetUser(adminCtx, &userv1.GetUserRequest{}, grpc.Peer(&basePeer)); err != nil {
			return fmt.Errorf("baseline over TLS: %w", err)
		}
		if rep.TLS, err = negotiated(authPeer, basePeer); err != nil {
			return err
		}
		fmt.Println("  negotiated:", rep.TLS)
	}
	valid, err := c.auth[0].ValidateToken(ctx, &authv1.ValidateTokenRequest{AccessToken: login.GetAccessToken()})
	if err != nil {
		return err
	}
	adminID := valid.GetSubject()
	if err := seedUsers(ctx, c.users["user"][0], 60); err != nil {
		return err
	}

	type scen struct {
		name   string
		pids   []string
		conc   int
		note   string
		call   func(ctx context.Context, worker int, conn int) error
		before func(workers int) error
		// backoff: a worker refused with ResourceExhausted waits the
		// RetryInfo delay before its next call, as a well-behaved client
		// does; otherwise it calls again at once, as a flood does.
		backoff bool
	}
	refresh := make([]string, max(o.concurrency, o.loginConcurrency))
	scenarios := []scen{
		{name: "baseline GetUser (bare grpc-go)", pids: []string{"baseline"}, call: func(ctx context.Context, _, i int) error {
			_, err := c.users["baseline"][i].GetUser(adminCtx, &userv1.GetUserRequest{Id: adminID})
			return err
		}},
		{name: "GetUser, token and user caches on", pids: []string{"user"}, call: func(ctx context.Context, _, i int) error {
			_, err := c.users["user"][i].GetUser(adminCtx, &userv1.GetUserRequest{Id: adminID})
			return err
		}},
		{name: "GetUser, token cache off", pids: []string{"user-nocache"}, call: func(ctx context.Context, _, i int) error {
			_, err := c.users["user-nocache"][i].GetUser(adminCtx, &userv1.GetUserRequest{Id: adminID})
			return err
		}},
		{name: "GetUser, user cache off", pids: []string{"user-nousercache"}, note: "every call reads the database", call: func(ctx context.Context, _, i int) error {
			_, err := c.users["user-nousercache"][i].GetUser(adminCtx, &userv1.GetUserRequest{Id: adminID})
			return err
		}},
		{name: "ListUsers, page of 50", pids: []string{"user"}, call: func(ctx context.Context, _, i int) error {
			r, err := c.users["user"][i].ListUsers(adminCtx, &userv1.ListUsersRequest{PageSize: 50})
			if err == nil && len(r.GetUsers()) != 50 {
				return fmt.Errorf("got %d users", len(r.GetUsers()))
			}
			return err
		}},
		{name: "ValidateToken", pids: []string{"auth"}, call: func(ctx context.Context, _, i int) error {
			_, err := c.auth[i].ValidateToken(ctx, &authv1.ValidateTokenRequest{AccessToken: login.GetAccessToken()})
			return err
		}},
		{name: "RefreshToken", pids: []string{"auth"}, before: func(workers int) error {
			for w := range workers {
				r, err := c.auth[0].Login(ctx, &authv1.LoginRequest{Email: "admin@example.com", Password: "bench keeps the keys"})
				if err != nil {
					return err
				}
				refresh[w] = r.GetRefreshToken()
			}
			return nil
		}, call: func(ctx context.Context, w, i int) error {
			r, err := c.auth[i].RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: refresh[w]})
			if err == nil {
				refresh[w] = r.GetRefreshToken()
			}
			return err
		}},
		{name: "Login (argon2id), 1 in flight", pids: []string{"auth", "user"}, conc: 1,
			note: "CPU and RSS: auth + user; argon2id runs in the User service", call: func(ctx context.Context, _, i int) error {
				_, err := c.auth[i].Login(ctx, &authv1.LoginRequest{Email: "admin@example.com", Password: "bench keeps the keys"})
				return err
			}},
		{name: "Login (argon2id), concurrent", pids: []string{"auth", "user"}, conc: o.loginConcurrency,
			note: "CPU and RSS: auth + user; argon2id runs in the User service", call: func(ctx context.Context, _, i int) error {
				_, err := c.auth[i].Login(ctx, &authv1.LoginRequest{Email: "admin@example.com", Password: "bench keeps the keys"})
				return err
			}},
		{name: "Login (argon2id), past capacity", pids: []string{"auth", "user"}, conc: o.loginFlood, backoff: true,
			note: "CPU and RSS: auth + user; a refused caller waits the retry delay it was given", call: func(ctx context.Context, _, i int) error {
				_, err := c.auth[i].Login(ctx, &authv1.LoginRequest{Email: "admin@example.com", Password: "bench keeps the keys"})
				return err
			}},
		{name: "Login (argon2id), past capacity, retries at once", pids: []string{"auth", "user"}, conc: o.loginFlood,
			note: "CPU and RSS: auth + user; a refused caller calls again at once, ignoring its retry delay, as a flood does", call: func(ctx context.Context, _, i int) error {
				_, err := c.auth[i].Login(ctx, &authv1.LoginRequest{Email: "admin@example.com", Password: "bench keeps the keys"})
				return err
			}},
	}
	// measure runs scenario s once; profile saves CPU and allocation
	// profiles of its servers over the measured window.
	measure := func(s scen, profile bool) (Result, error) {
		conc := o.concurrency
		if s.conc > 0 {
			conc = s.conc
		}
		step(fmt.Sprintf("scenario %q: %d in flight, %s warm-up, %s measured", s.name, conc, o.warmup, o.duration))
		if s.before != nil {
			if err := s.before(conc); err != nil {
				return Result{}, fmt.Errorf("%s: setup: %w", s.name, err)
			}
		}
		var pids []int
		var profiles sync.WaitGroup
		for _, n := range s.pids {
			pids = append(pids, procs[n].PID())
			if !profile || procs[n].HTTPAddr == "" {
				continue
			}
			for _, kind := range []string{"profile", "allocs"} {
				profiles.Add(1)
				go func() {
					defer profiles.Done()
					// Starts after the warm-up, covers the measured window.
					time.Sleep(o.warmup)
					name := strings.NewReplacer(" ", "-", ",", "", "(", "", ")", "").Replace(s.name) + "." + n + "." + kind + ".pprof"
					if err := fetchProfile(tr.httpClient(), procs[n].HTTPAddr, kind, o.duration, filepath.Join(o.profile, name)); err != nil {
						fmt.Println("  profile:", err)
					}
				}()
			}
		}
		r := drive(ctx, conc, o.conns, o.warmup, o.duration, pids, s.call, s.backoff)
		profiles.Wait()
		r.Scenario, r.Note = s.name, s.note
		if len(s.pids) > 1 {
			r.PeakRSSByProcess = map[string]float64{}
			for i, n := range s.pids {
				r.PeakRSSByProcess[n] = r.peaks[i]
			}
		}
		fmt.Printf("  %.0f calls/s, p50 %.2f ms, p99 %.2f ms, %.0f µs CPU/call, peak RSS %.1f MiB, %d errors\n",
			r.QPS, r.P50ms, r.P99ms, r.CPUPerCall, r.PeakRSSMiB, r.Errors)
		if r.Refused > 0 {
			fmt.Printf("  %d refused (ResourceExhausted): p50 %.2f ms, p99 %.2f ms, retry delay p50 %.0f ms\n",
				r.Refused, r.RefusedP50ms, r.RefusedP99ms, r.RetryAfterMs)
		}
		return r, nil
	}

	// This VM's speed drifts by a third within minutes (neighbours), so
	// every scenario is measured right after a baseline run, in several
	// rounds, and each ratio is the median of those paired ratios.
	base, selected := scenarios[0], []scen{}
	for _, s := range scenarios[1:] {
		if o.scenarios == nil || o.scenarios.MatchString(s.name) {
			selected = append(selected, s)
		}
	}
	runs := map[string][]Result{}
	pairs := map[string][][2]Result{}
	for round := 1; round <= o.rounds; round++ {
		step(fmt.Sprintf("round %d of %d", round, o.rounds))
		if len(selected) == 0 { // -scenarios picked the baseline alone
			b, err := measure(base, false)
			if err != nil {
				return err
			}
			runs[base.name] = append(runs[base.name], b)
		}
		for _, s := range selected {
			b, err := measure(base, false)
			if err != nil {
				return err
			}
			r, err := measure(s, false)
			if err != nil {
				return err
			}
			runs[base.name] = append(runs[base.name], b)
			runs[s.name] = append(runs[s.name], r)
			pairs[s.name] = append(pairs[s.name], [2]Result{r, b})
		}
	}
	if o.profile != "" {
		// A separate pass, left out of the figures: profiling costs the
		// servers CPU.
		step("profiling pass (not counted)")
		for _, s := range selected {
			if _, err := measure(s, true); err != nil {
				return err
			}
		}
	}
	if len(runs[base.name]) > 0 {
		rep.Results = append(rep.Results, summarize(runs[base.name], nil))
	}
	for _, s := range selected {
		rep.Results = append(rep.Results, summarize(runs[s.name], pairs[s.name]))
	}
	rep.Spans = spans.Load()

	md := markdown(rep)
	fmt.Println()
	fmt.Print(md)
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(o.out, "latest.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(o.out, "latest.md"), []byte(md), 0o644)
}

// drive runs calls from conc workers for warmup (discarded) then dur, and
// measures throughput, latency and the servers' CPU time and peak RSS.
func drive(ctx context.Context, conc, conns int, warmup, dur time.Duration, pids []int, call func(context.Context, int, int) error, backoff bool) Result {
	var measuring atomic.Bool
	var calls, errs, refused atomic.Int64
	lat := make([][]time.Duration, conc)
	refusedLat := make([][]time.Duration, conc)
	retryAfter := make([][]time.Duration, conc)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				t0 := time.Now()
				err := call(cctx, w, w%conns)
				d := time.Since(t0)
				cancel()
				refusal := status.Code(err) == codes.ResourceExhausted
				counted := measuring.Load() // when the answer came, not after the backoff
				if refusal && backoff {
					select {
					case <-stop:
					case <-time.After(retryDelay(err)):
					}
				}
				if !counted {
					continue
				}
				calls.Add(1)
				if refusal {
					refused.Add(1)
					refusedLat[w] = append(refusedLat[w], d)
					retryAfter[w] = append(retryAfter[w], retryDelay(err))
					continue
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lat[w] = append(lat[w], d)
			}
		}()
	}
	time.Sleep(warmup)
	for _, pid := range pids {
		localproc.ResetPeakRSS(pid)
	}
	cpu0 := localproc.CPUSeconds(pids)
	t0 := time.Now()
	measuring.Store(true)
	time.Sleep(dur)
	measuring.Store(false)
	elapsed := time.Since(t0)
	cpu1 := localproc.CPUSeconds(pids)
	close(stop)
	wg.Wait()

	r := Result{Calls: calls.Load(), Errors: errs.Load(), Refused: refused.Load(), Concurrency: conc}
	r.QPS = float64(r.Calls-r.Errors-r.Refused) / elapsed.Seconds()
	r.P50ms, r.P99ms = percentiles(lat)
	r.RefusedP50ms, r.RefusedP99ms = percentiles(refusedLat)
	r.RetryAfterMs, _ = percentiles(retryAfter)
	if r.Calls > 0 {
		r.CPUPerCall = (cpu1 - cpu0) / float64(r.Calls) * 1e6
	}
	for _, pid := range pids {
		peak := localproc.PeakRSSMiB(pid)
		r.PeakRSSMiB += peak
		r.peaks = append(r.peaks, peak)
	}
	if e, ok := firstErr.Load().(string); ok {
		fmt.Println("  first error:", e)
	}
	return r
}

// percentiles are the p50 and p99 of the workers' latencies, in ms.
func percentiles(perWorker [][]time.Duration) (p50, p99 float64) {
	all := slices.Concat(perWorker...)
	if len(all) == 0 {
		return 0, 0
	}
	slices.Sort(all)
	return ms(all[len(all)*50/100]), ms(all[min(len(all)-1, len(all)*99/100)])
}

// retryDelay is the delay a status's RetryInfo names, 0 without one.
func retryDelay(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

func markdown(rep Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s, %s, %s. Servers pinned apart from the load generator: %v. Spans exported to the OTLP sink: %d.\n\n",
		rep.Machine, rep.GoVersion, rep.Date, rep.Pinned, rep.Spans)
	if rep.UserDatabase == "postgres" {
		fmt.Fprintf(&b, "User service on PostgreSQL (-user-postgres): its three processes are replicas of one database.\n\n")
	}
	if rep.TLS != "" {
		fmt.Fprintf(&b, "Over TLS (-tls): every server, the baseline included, served TLS (%s) with a certificate from a throwaway CA "+
			"that the load generator verified, and the services called each other over TLS. Ratios compare TLS with TLS.\n\n", rep.TLS)
	}
	fmt.Fprintf(&b, "%d rounds; in each, every scenario ran right after a baseline run. QPS, latencies and CPU are "+
		"medians over the rounds (the baseline's over all its runs), \"× base\" the median of the paired ratios, "+
		"peak RSS the highest seen and errors the total.\n\n", rep.Rounds)
	b.WriteString("| Scenario | In flight | QPS | × base | p50 ms | p99 ms | p99 × base | CPU µs/call | × base | Peak RSS MiB | Errors |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %.0f | %.2f | %.1f | %d |\n",
			r.Scenario, r.Concurrency, r.QPS, r.QPSRatio, r.P50ms, r.P99ms, r.P99Ratio,
			r.CPUPerCall, r.CPURatio, r.PeakRSSMiB, r.Errors)
	}
	b.WriteString("\n| Process | Start → SERVING ms | Idle RSS MiB | of which anonymous | Binary MiB | Image |\n|---|---:|---:|---:|---:|---:|\n")
	for _, n := range []string{"baseline", "user", "auth"} {
		img := rep.Images[n]
		if img == "" {
			img = "–"
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.1f | %.1f | %.1f | %s |\n", n, rep.Startup[n], rep.IdleRSS[n], rep.IdleRSSAnon[n], rep.Binaries[n], img)
	}
	for _, r := range rep.Results {
		if r.Note != "" {
			fmt.Fprintf(&b, "\n%s: %s.", r.Scenario, r.Note)
		}
		if r.Refused > 0 {
			fmt.Fprintf(&b, "\n%s: %d calls refused with ResourceExhausted (not errors, not in QPS): p50 %.2f ms, p99 %.2f ms, retry delay named p50 %.0f ms.",
				r.Scenario, r.Refused, r.RefusedP50ms, r.RefusedP99ms, r.RetryAfterMs)
		}
		if len(r.PeakRSSByProcess) > 0 {
			var parts []string
			for _, n := range slices.Sorted(maps.Keys(r.PeakRSSByProcess)) {
				parts = append(parts, fmt.Sprintf("%s %.1f MiB", n, r.PeakRSSByProcess[n]))
			}
			fmt.Fprintf(&b, "\n%s: peak RSS %s.", r.Scenario, strings.Join(parts, ", "))
		}
	}
	b.WriteString("\n")
	return b.String()
}

type clients struct {
	conns []*grpc.ClientConn
	// users holds n connections' clients per User service process (and
	// the baseline, which serves the same API), keyed by process name.
	users map[string][]userv1.UserServiceClient
	auth  []authv1.AuthServiceClient
}

func newClients(n int, creds credentials.TransportCredentials, auth string, users map[string]string) (*clients, error) {
	c := &clients{users: map[string][]userv1.UserServiceClient{}}
	dial := func(addr string) (*grpc.ClientConn, error) {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err == nil {
			c.conns = append(c.conns, conn)
		}
		return conn, err
	}
	for range n {
		for name, addr := range users {
			cc, err := dial(addr)
			if err != nil {
				c.close()
				return nil, err
			}
			c.users[name] = append(c.users[name], userv1.NewUserServiceClient(cc))
		}
		cc, err := dial(auth)
		if err != nil {
			c.close()
			return nil, err
		}
		c.auth = append(c.auth, authv1.NewAuthServiceClient(cc))
	}
	return c, nil
}

func (c *clients) close() {
	for _, cc := range c.conns {
		_ = cc.Close()
	}
}

func seedUsers(ctx context.Context, client userv1.UserServiceClient, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := client.CreateUser(ctx, &userv1.CreateUserRequest{Email: fmt.Sprintf("bench%03d@example.com", i), Password: "bench passphrase"})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return fmt.Errorf("seeding users: %w", err)
		}
	}
	return nil
}

// otlpSink is a local OTLP/gRPC trace receiver that counts and drops spans,
// so tracing costs what it costs in production without a collector.
type traceSink struct {
	collectortrace.UnimplementedTraceServiceServer
	spans *atomic.Int64
}

func (s traceSink) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			s.spans.Add(int64(len(ss.GetSpans())))
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func otlpSink() (string, *atomic.Int64, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	var n atomic.Int64
	s := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(s, traceSink{spans: &n})
	go func() { _ = s.Serve(l) }()
	return l.Addr().String(), &n, s.Stop, nil
}

// fetchProfile saves a profile of the server at httpAddr taken over d:
// kind "profile" for CPU, "allocs" for the allocations made during d.
// client is nil for plain http, else an https client.
func fetchProfile(client *http.Client, httpAddr, kind string, d time.Duration, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	scheme := "https"
	if client == nil {
		client, scheme = http.DefaultClient, "http"
	}
	url := fmt.Sprintf("%s://%s/debug/pprof/%s?seconds=%d", scheme, httpAddr, kind, max(1, int(d.Seconds())))
	resp, err := client.Get(url) //nolint:noctx // bounded by the profile length
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// imageSizes reports the size of each image make images built from this
// checkout (hack/images.sh tags them with git describe), or says how to
// build them.
func imageSizes() map[string]string {
	tag := "dev"
	if b, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		tag = strings.TrimSpace(string(b))
	}
	out := map[string]string{}
	for _, svc := range []string{"user", "auth"} {
		ref := "ghcr.io/gatehouse-dev/gatehouse-" + svc + ":" + tag
		out[svc] = "not built (make images)"
		b, err := exec.Command("docker", "image", "inspect", "--format", "{{.Size}}", ref).Output()
		if err != nil {
			continue
		}
		if n, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil {
			out[svc] = fmt.Sprintf("%.1f MB (%s)", n/1e6, tag)
		}
	}
	return out
}

func step(s string) { fmt.Printf("bench: %s (%s)\n", s, time.Now().Format("15:04:05")) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func mib(n int64) float64        { return float64(n) / (1 << 20) }

// tlsRun is the throwaway PKI of a -tls run. Its methods work on nil,
// the plaintext run.
type tlsRun struct {
	// files are each server's certificate, key and CA bundle, by name:
	// baseline, user (all three User processes) and auth.
	files map[string]pki.Files
	// client verifies the servers: the CA, and the name dialled.
	client *tls.Config
	creds  credentials.TransportCredentials
}

// newTLSRun issues a CA and a certificate per server into dir. The
// names are those the bench dials (localhost) and listens on
// (127.0.0.1, which the Auth service dials the User service at), and,
// for the Auth service, gatehouse-auth: the name the User service's
// SERVICE_PEER_NAMES expects on its client certificate.
func newTLSRun(dir string) (*tlsRun, error) {
	ca, err := pki.NewCA("gatehouse bench CA", 24*time.Hour)
	if err != nil {
		return nil, err
	}
	tr := &tlsRun{files: map[string]pki.Files{}}
	for name, names := range map[string][]string{
		"baseline": {"localhost", "127.0.0.1"},
		"user":     {"localhost", "127.0.0.1"},
		"auth":     {"localhost", "127.0.0.1", "gatehouse-auth"},
	} {
		var err error
		if _, tr.files[name], err = ca.IssueFiles(filepath.Join(dir, name), pki.Request{Names: names}); err != nil {
			return nil, err
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	tr.client = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	tr.creds = credentials.NewTLS(tr.client)
	return tr, nil
}

// env is the TLS settings of the service whose certificate is name's.
func (tr *tlsRun) env(name string) []string {
	if tr == nil {
		return nil
	}
	f := tr.files[name]
	return []string{"TLS_CERT_FILE=" + f.Cert, "TLS_KEY_FILE=" + f.Key, "TLS_CA_FILE=" + f.CA}
}

// httpClient fetches from the services' HTTP ports over https; nil for
// plain http.
func (tr *tlsRun) httpClient() *http.Client {
	if tr == nil {
		return nil
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tr.client.Clone(), ForceAttemptHTTP2: true}}
}

// negotiated names the TLS version and cipher suite of the connections
// to the services and to the baseline, which must agree for the ratios
// to compare like with like.
func negotiated(service, baseline peer.Peer) (string, error) {
	describe := func(p peer.Peer) string {
		info, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok {
			return "plaintext"
		}
		return tls.VersionName(info.State.Version) + ", " + tls.CipherSuiteName(info.State.CipherSuite)
	}
	s, b := describe(service), describe(baseline)
	if s != b || s == "plaintext" {
		return "", fmt.Errorf("-tls: the services negotiated %s, the baseline %s", s, b)
	}
	return s, nil
}
