package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/gatehouse-dev/gatehouse/hack/localproc"
	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
)

func main() {
	short := flag.Bool("short", false, "smaller floods, for make test")
	bin := flag.String("bin", "", "directory holding the user and auth binaries (default: build them)")
	flag.Parse()
	if err := run(*short, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "abuse:", err)
		os.Exit(1)
	}
}

// scale holds the sizes of the floods.
type scale struct {
	items       int           // repeated-field items per hostile request
	memoryFor   time.Duration // how long the 1 MiB requests run
	signups     int           // anonymous sign-ups in the flood
	signupAddrs int           // addresses they come from
	guesses     int           // wrong guesses of the lock-out
	spray       int           // sprayed logins per address
	sprayers    int           // addresses spraying
	logFlood    time.Duration // how long garbage refreshes run
	idleConns   int           // idle HTTP connections opened
}

var (
	full  = scale{items: 300_000, memoryFor: 10 * time.Second, signups: 300, signupAddrs: 40, guesses: 50, spray: 150, sprayers: 10, logFlood: 10 * time.Second, idleConns: 300}
	small = scale{items: 300_000, memoryFor: 3 * time.Second, signups: 100, signupAddrs: 10, guesses: 20, spray: 110, sprayers: 2, logFlood: 3 * time.Second, idleConns: 120}
)

// The promises, from the chart and the README's Security model.
const (
	memoryLimitMiB = 256  // the chart's User service memory limit
	maxStatus      = 4096 // bytes of status for any hostile request
	maxLogLines    = 100  // lines a second under a flood
	signupBurst    = 5    // SIGNUP_RATE_PER_ADDR's default
)

type env struct {
	s                         scale
	work                      string
	user, auth                *localproc.Proc
	userAddr, authAddr        string
	userHTTP                  string
	userLog, authLog          string
	userClient                userv1.UserServiceClient
	authClient                authv1.AuthServiceClient
	conns                     []*grpc.ClientConn
	adminEmail, adminPassword string
	adminToken                string
	adminID, victimID         string // looked up once in start
	victimEmail, victimPass   string
	failures                  []string
}

func run(short bool, bin string) error {
	e := &env{s: full, adminEmail: "admin@example.com", adminPassword: "abuse admin passphrase"}
	if short {
		e.s = small
	}
	var err error
	if e.work, err = os.MkdirTemp("", "gatehouse-abuse-"); err != nil {
		return err
	}
	defer os.RemoveAll(e.work)
	if bin == "" {
		bin = filepath.Join(e.work, "bin")
		if err := localproc.Build(".", bin, "grpcnotrace"); err != nil {
			return err
		}
	}
	if err := e.start(bin); err != nil {
		return err
	}
	defer e.stop()

	for _, a := range []struct {
		name string
		fn   func() (string, error)
	}{
		{"amplify", e.amplify},
		{"memory", e.memory},
		{"free-cpu", e.freeCPU},
		{"signup-flood", e.signupFlood},
		{"lockout", e.lockout},
		{"spray", e.spray},
		{"log-flood", e.logFlood},
		{"idle-http", e.idleHTTP},
	} {
		start := time.Now()
		figures, err := a.fn()
		verdict := "ok"
		if err != nil {
			verdict = "FAILED: " + err.Error()
			e.failures = append(e.failures, a.name)
		}
		fmt.Printf("abuse: %-12s %s (%.1fs) %s\n", a.name, figures, time.Since(start).Seconds(), verdict)
	}
	if len(e.failures) > 0 {
		return fmt.Errorf("%d attacks not contained: %s (logs in %s, kept)", len(e.failures), strings.Join(e.failures, ", "), e.keepLogs())
	}
	fmt.Println("abuse: every attack contained")
	return nil
}

func (e *env) start(bin string) error {
	ports, err := localproc.FreePorts(4)
	if err != nil {
		return err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	e.authAddr, e.userAddr, e.userHTTP = addr(0), addr(2), addr(3)
	keys := filepath.Join(e.work, "keys")
	if err := localproc.WriteKey(keys, "abuse"); err != nil {
		return err
	}
	e.authLog, e.userLog = filepath.Join(e.work, "auth.log"), filepath.Join(e.work, "user.log")
	common := []string{"DRAIN_DELAY=0s"}
	if e.auth, err = localproc.Start(filepath.Join(bin, "auth"), nil, append(common,
		"GRPC_ADDR="+addr(0), "HTTP_ADDR="+addr(1), "DATABASE_URL=sqlite://"+filepath.Join(e.work, "auth.db"),
		"JWT_SIGNING_KEYS_DIR="+keys, "USER_SERVICE_ADDR="+addr(2)), "", e.authLog); err != nil {
		return err
	}
	if _, err := localproc.WaitServing(addr(0), e.auth); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if e.user, err = localproc.Start(filepath.Join(bin, "user"), nil, append(common,
		"GRPC_ADDR="+addr(2), "HTTP_ADDR="+addr(3), "DATABASE_URL=sqlite://"+filepath.Join(e.work, "user.db"),
		"JWKS_URL=http://"+addr(1)+"/.well-known/jwks.json",
		"BOOTSTRAP_ADMIN_EMAIL="+e.adminEmail, "BOOTSTRAP_ADMIN_PASSWORD="+e.adminPassword,
		// What the chart's User pod gets: 90% of its 256 MiB memory limit
		// as the soft limit (the service sets it from the cgroup), and a
		// hashing budget that fits it.
		"GOMEMLIMIT=241591910", "PASSWORD_HASH_CONCURRENCY=4",
		// Like the chart's Service: 8 idle HTTP connections fill it, so the
		// idle-http attack needs few.
		"HTTP_MAX_CONNECTIONS=8", "HTTP_IDLE_TIMEOUT=2s"), "", e.userLog); err != nil {
		return err
	}
	if _, err := localproc.WaitServing(addr(2), e.user); err != nil {
		return fmt.Errorf("user: %w", err)
	}
	uc, err := e.dial(e.userAddr, "")
	if err != nil {
		return err
	}
	ac, err := e.dial(e.authAddr, "")
	if err != nil {
		return err
	}
	e.userClient, e.authClient = userv1.NewUserServiceClient(uc), authv1.NewAuthServiceClient(ac)
	login, err := e.authClient.Login(context.Background(), &authv1.LoginRequest{Email: e.adminEmail, Password: e.adminPassword})
	if err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	e.adminToken = login.GetAccessToken()
	e.victimEmail, e.victimPass = "victim@example.com", "the victim's own passphrase"
	victim, err := e.userClient.CreateUser(e.as(e.adminToken), &userv1.CreateUserRequest{Email: e.victimEmail, Password: e.victimPass, DisplayName: "Victim"})
	if err != nil {
		return fmt.Errorf("create victim: %w", err)
	}
	e.victimID = victim.GetUser().GetId()
	list, err := e.userClient.ListUsers(e.as(e.adminToken), &userv1.ListUsersRequest{PageSize: 10})
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	for _, u := range list.GetUsers() {
		if u.GetEmail() == e.adminEmail {
			e.adminID = u.GetId()
		}
	}
	if e.adminID == "" {
		return errors.New("admin not in ListUsers")
	}
	return nil
}

func (e *env) stop() {
	for _, c := range e.conns {
		_ = c.Close()
	}
	if e.user != nil {
		e.user.Stop()
	}
	if e.auth != nil {
		e.auth.Stop()
	}
}

// keepLogs copies the logs out of the temporary directory for a failure.
func (e *env) keepLogs() string {
	dir, err := os.MkdirTemp("", "gatehouse-abuse-logs-")
	if err != nil {
		return e.work
	}
	for _, f := range []string{e.userLog, e.authLog} {
		if b, err := os.ReadFile(f); err == nil {
			_ = os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600)
		}
	}
	return dir
}

// dial connects to addr, from the loopback address from (a client of its
// own for the per-address limits) unless it is "".
func (e *env) dial(addr, from string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20))}
	if from != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }))
	}
	c, err := grpc.NewClient(addr, opts...)
	if err == nil {
		e.conns = append(e.conns, c)
	}
	return c, err
}

func (e *env) as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

func many(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func statusSize(err error) int { return proto.Size(status.Convert(err).Proto()) }

// amplify: the largest repeated fields and masks, each answered with a
// bounded status.
func (e *env) amplify() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := e.s.items
	calls := map[string]func() error{
		"CreateUser admin roles": func() error {
			_, err := e.userClient.CreateUser(metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", "Bearer "+e.adminToken)),
				&userv1.CreateUserRequest{Email: "r@example.com", Password: "velvet anchor 42", Roles: many("x", n)})
			return err
		},
		"CreateUser anonymous roles": func() error {
			_, err := e.userClient.CreateUser(ctx, &userv1.CreateUserRequest{Email: "r@example.com", Password: "velvet anchor 42", Roles: many("x", n)})
			return err
		},
		"UpdateUser paths": func() error {
			_, err := e.userClient.UpdateUser(metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", "Bearer "+e.adminToken)),
				&userv1.UpdateUserRequest{Id: e.adminID, UpdateMask: &fieldmaskpb.FieldMask{Paths: many("x", n)}})
			return err
		},
	}
	var worst int
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range calls {
			if !yield(k) {
				return
			}
		}
	})
	for _, name := range names {
		err := calls[name]()
		code := status.Code(err)
		if code != codes.InvalidArgument && code != codes.PermissionDenied {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		worst = max(worst, statusSize(err))
	}
	figures := fmt.Sprintf("%d-item requests: largest status %d B (limit %d)", n, worst, maxStatus)
	if worst > maxStatus {
		return figures, errors.New("status too large")
	}
	return figures, nil
}

// memory: 8 workers send 1 MiB hostile requests for a while; the User
// service's peak RSS stays under the chart's memory limit.
func (e *env) memory() (string, error) {
	pid := e.user.PID()
	localproc.ResetPeakRSS(pid)
	paths := many(strings.Repeat("p", 24), 40_000) // about 1 MiB
	roles := many(strings.Repeat("r", 24), 40_000)
	deadline := time.Now().Add(e.s.memoryFor)
	var sent atomic.Int64
	var wrong atomic.Value
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				ctx, cancel := context.WithTimeout(e.as(e.adminToken), 10*time.Second)
				var err error
				if w%2 == 0 {
					_, err = e.userClient.UpdateUser(ctx, &userv1.UpdateUserRequest{Id: e.adminID, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
				} else {
					_, err = e.userClient.CreateUser(ctx, &userv1.CreateUserRequest{Email: "m@example.com", Password: "velvet anchor 42", Roles: roles})
				}
				cancel()
				if status.Code(err) != codes.InvalidArgument {
					wrong.Store(fmt.Sprint(err))
				}
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	peak := localproc.PeakRSSMiB(pid)
	figures := fmt.Sprintf("%d requests of 1 MiB, 8 at a time: User peak RSS %.0f MiB (limit %d)", sent.Load(), peak, memoryLimitMiB)
	if w, ok := wrong.Load().(string); ok {
		return figures, fmt.Errorf("a hostile request was not refused as InvalidArgument: %s", w)
	}
	if peak > memoryLimitMiB {
		return figures, errors.New("over the memory limit")
	}
	return figures, nil
}

// freeCPU: an update_mask naming "password" 300 times costs no hash.
func (e *env) freeCPU() (string, error) {
	before, err := e.hashes()
	if err != nil {
		return "", err
	}
	for range 20 {
		_, err := e.userClient.UpdateUser(e.as(e.adminToken), &userv1.UpdateUserRequest{Id: e.victimID, Password: "a new passphrase here",
			UpdateMask: &fieldmaskpb.FieldMask{Paths: many("password", 300)}})
		if status.Code(err) != codes.InvalidArgument {
			return "", fmt.Errorf("300 password paths: %w", err)
		}
	}
	after, err := e.hashes()
	if err != nil {
		return "", err
	}
	figures := fmt.Sprintf("20 updates naming password 300 times: %.0f argon2id computations", after-before)
	if after != before {
		return figures, errors.New("they hashed")
	}
	return figures, nil
}

// hashes reads gatehouse_password_hashes_total from the User service's
// /metrics, summed over budgets and operations.
func (e *env) hashes() (float64, error) {
	resp, err := http.Get("http://" + e.userHTTP + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var total float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "gatehouse_password_hashes_total{") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			total += v
		}
	}
	return total, sc.Err()
}

// signupFlood: anonymous sign-ups from several addresses, 20 at a time,
// while the victim logs in again and again. Each address gets its burst
// and is then refused with a retry delay; the sign-ups that pass hash on
// their own budget, so every login succeeds, and quickly.
func (e *env) signupFlood() (string, error) {
	clients := make([]userv1.UserServiceClient, e.s.signupAddrs)
	for i := range clients {
		uc, err := e.dial(e.userAddr, fmt.Sprintf("127.0.2.%d", i+1))
		if err != nil {
			return "", err
		}
		clients[i] = userv1.NewUserServiceClient(uc)
	}
	var accepted, limited, withRetry atomic.Int64
	var other atomic.Value
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 20 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(e.s.signups); i = next.Add(1) {
				_, err := clients[int(i)%len(clients)].CreateUser(context.Background(),
					&userv1.CreateUserRequest{Email: fmt.Sprintf("flood%d@example.com", i), Password: "velvet anchor 42"})
				switch status.Code(err) {
				case codes.OK:
					accepted.Add(1)
				case codes.ResourceExhausted:
					limited.Add(1)
					if retryInfo(err) {
						withRetry.Add(1)
					}
				default:
					other.Store(fmt.Sprint(err))
				}
			}
		})
	}
	// The legitimate logins come from 4 addresses of their own (users of
	// the service, not one client hammering it past its per-address limit).
	loginers := make([]authv1.AuthServiceClient, 4)
	for i := range loginers {
		ac, err := e.dial(e.authAddr, fmt.Sprintf("127.0.3.%d", i+1))
		if err != nil {
			return "", err
		}
		loginers[i] = authv1.NewAuthServiceClient(ac)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	logins, failed, worst := 0, 0, time.Duration(0)
	for flooding := true; flooding || logins < 5; {
		select {
		case <-done:
			flooding = false
		default:
		}
		start := time.Now()
		_, err := loginers[logins%len(loginers)].Login(context.Background(), &authv1.LoginRequest{Email: e.victimEmail, Password: e.victimPass})
		worst = max(worst, time.Since(start))
		logins++
		if err != nil {
			failed++
		}
	}
	figures := fmt.Sprintf("%d sign-ups from %d addresses: %d accepted, %d ResourceExhausted (%d with RetryInfo); %d logins meanwhile, %d failed, slowest %d ms",
		e.s.signups, e.s.signupAddrs, accepted.Load(), limited.Load(), withRetry.Load(), logins, failed, worst.Milliseconds())
	switch {
	case other.Load() != nil:
		return figures, fmt.Errorf("unexpected answer: %v", other.Load())
	case accepted.Load() > int64(e.s.signupAddrs*(signupBurst+1)): // a token may refill during the run
		return figures, errors.New("more sign-ups than the limit")
	case withRetry.Load() != limited.Load():
		return figures, errors.New("a refusal without RetryInfo")
	case failed > 0:
		return figures, errors.New("logins failed during the flood")
	}
	return figures, nil
}

func retryInfo(err error) bool {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() > 0 {
			return true
		}
	}
	return false
}

// lockout: wrong guesses from one address stop that address, and never
// the owner logging in from its own.
func (e *env) lockout() (string, error) {
	ac, err := e.dial(e.authAddr, "127.0.0.30")
	if err != nil {
		return "", err
	}
	attacker := authv1.NewAuthServiceClient(ac)
	bad, limited := 0, 0
	var lastRefusal error
	for i := range e.s.guesses {
		_, err := attacker.Login(context.Background(), &authv1.LoginRequest{Email: e.victimEmail, Password: fmt.Sprintf("guess number %d", i)})
		switch status.Code(err) {
		case codes.Unauthenticated:
			bad++
		case codes.ResourceExhausted:
			limited++
			lastRefusal = err
		default:
			return "", fmt.Errorf("guess %d: %w", i, err)
		}
	}
	oc, err := e.dial(e.authAddr, "127.0.0.31")
	if err != nil {
		return "", err
	}
	_, ownerErr := authv1.NewAuthServiceClient(oc).Login(context.Background(), &authv1.LoginRequest{Email: e.victimEmail, Password: e.victimPass})
	figures := fmt.Sprintf("%d guesses from one address: %d checked, %d ResourceExhausted; the owner from another address: %v",
		e.s.guesses, bad, limited, status.Code(ownerErr))
	switch {
	case ownerErr != nil:
		return figures, errors.New("the owner is locked out")
	case limited == 0 || !retryInfo(lastRefusal):
		return figures, errors.New("the guesses were not limited, or without RetryInfo")
	}
	return figures, nil
}

// spray: many accounts from a few addresses; each address is stopped at
// its limit, and afterwards a real user's first login from a fresh
// address succeeds (a full limiter never refuses a newcomer).
func (e *env) spray() (string, error) {
	var checked, limited atomic.Int64
	var other atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for a := range e.s.sprayers {
		c, err := e.dial(e.authAddr, fmt.Sprintf("127.0.1.%d", a+1))
		if err != nil {
			return "", err
		}
		client := authv1.NewAuthServiceClient(c)
		wg.Go(func() {
			for i := range e.s.spray {
				_, err := client.Login(context.Background(), &authv1.LoginRequest{Email: fmt.Sprintf("spray-%d-%d@example.com", a, i), Password: "Summer2026!"})
				switch status.Code(err) {
				case codes.Unauthenticated:
					checked.Add(1)
				case codes.ResourceExhausted:
					limited.Add(1)
				default:
					other.Store(fmt.Sprint(err))
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	fc, err := e.dial(e.authAddr, "127.0.0.40")
	if err != nil {
		return "", err
	}
	_, firstErr := authv1.NewAuthServiceClient(fc).Login(context.Background(), &authv1.LoginRequest{Email: e.victimEmail, Password: e.victimPass})
	figures := fmt.Sprintf("%d addresses x %d accounts: %d checked, %d ResourceExhausted; a real user's first login: %v",
		e.s.sprayers, e.s.spray, checked.Load(), limited.Load(), status.Code(firstErr))
	switch {
	case other.Load() != nil:
		return figures, fmt.Errorf("unexpected answer: %v", other.Load())
	case float64(checked.Load()) > float64(e.s.sprayers)*(100+elapsed.Minutes()*100+1): // LOGIN_RATE_PER_ADDR: a burst of 100, then 100 a minute
		return figures, errors.New("an address got past its limit")
	case firstErr != nil:
		return figures, errors.New("a real user was refused after the spray")
	}
	return figures, nil
}

// logFlood: garbage refresh tokens from 8 clients as fast as they go; the
// services' logs grow by at most maxLogLines a second.
func (e *env) logFlood() (string, error) {
	before := lines(e.authLog) + lines(e.userLog)
	start := time.Now()
	var sent atomic.Int64
	var other atomic.Value
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; time.Since(start) < e.s.logFlood; i++ {
				_, err := e.authClient.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{RefreshToken: fmt.Sprintf("garbage-%d-%d", w, i)})
				if status.Code(err) != codes.Unauthenticated {
					other.Store(fmt.Sprint(err))
					return
				}
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	written := lines(e.authLog) + lines(e.userLog) - before
	rate := float64(written) / elapsed
	figures := fmt.Sprintf("%d garbage refreshes in %.0fs (%.0f/s): %d log lines, %.0f/s (limit %d/s)",
		sent.Load(), elapsed, float64(sent.Load())/elapsed, written, rate, maxLogLines)
	switch {
	case other.Load() != nil:
		return figures, fmt.Errorf("unexpected answer: %v", other.Load())
	case rate > maxLogLines:
		return figures, errors.New("the log grows with the flood")
	}
	return figures, nil
}

func lines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	buf := make([]byte, 64<<10)
	for {
		c, err := f.Read(buf)
		n += strings.Count(string(buf[:c]), "\n")
		if err == io.EOF || err != nil {
			return n
		}
	}
}

// idleHTTP: keep-alive connections left idle after a request: the HTTP
// port serves at most its cap of them at once (the rest wait in the
// backlog), closes them after the idle timeout, and gRPC keeps answering.
func (e *env) idleHTTP() (string, error) {
	pid := e.user.PID()
	fdsBefore := openFiles(pid)
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			_ = c.Close()
		}
	}()
	d := net.Dialer{Timeout: time.Second}
	for range e.s.idleConns {
		c, err := d.DialContext(context.Background(), "tcp", e.userHTTP)
		if err != nil {
			break // the backlog is full: that is the cap working
		}
		idle = append(idle, c)
		_, _ = io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: abuse\r\n\r\n")
	}
	time.Sleep(200 * time.Millisecond)
	fdsDuring := openFiles(pid)
	_, loginErr := e.authClient.Login(context.Background(), &authv1.LoginRequest{Email: e.victimEmail, Password: e.victimPass})
	time.Sleep(4 * time.Second) // HTTP_IDLE_TIMEOUT=2s, with room for a loaded machine
	closed := 0
	for _, c := range idle {
		if closedByPeer(c) {
			closed++
		}
	}
	figures := fmt.Sprintf("%d idle HTTP connections: User descriptors %d -> %d (cap 8); %d closed by the server after the idle timeout; Login meanwhile: %v",
		len(idle), fdsBefore, fdsDuring, closed, status.Code(loginErr))
	switch {
	case loginErr != nil:
		return figures, errors.New("gRPC failed while the HTTP port was full")
	case fdsDuring > fdsBefore+8+4:
		return figures, errors.New("the HTTP port accepted past its cap")
	case closed < min(8, len(idle)):
		return figures, errors.New("idle connections were kept past the idle timeout")
	}
	return figures, nil
}

// closedByPeer reads what c has received and reports whether the other
// end closed it.
func closedByPeer(c net.Conn) bool {
	buf := make([]byte, 32<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			return !errors.As(err, &ne) || !ne.Timeout()
		}
	}
}

func openFiles(pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(entries)
}
