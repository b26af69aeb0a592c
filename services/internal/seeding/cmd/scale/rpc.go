package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/gatehouse-dev/gatehouse/hack/localproc"
	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/internal/user"
)

// rpcServices runs the User and Auth services, built from this checkout
// with the images' flags, on one size's seeded databases, so that each
// operation is also timed as a client sees it: a real gRPC call over
// loopback with the interceptor chain, the token check, the caches and
// the call between the services included.
type rpcServices struct {
	bins, keys, work string
	ports            []int
	user, auth       *localproc.Proc
}

const (
	adminEmail    = "scale-admin@example.com"
	adminPassword = "the scale bench's own admin"
)

// buildServices compiles both services once for every size.
func buildServices(root, work string) (*rpcServices, error) {
	s := &rpcServices{bins: filepath.Join(work, "bin"), keys: filepath.Join(work, "keys"), work: work}
	if err := localproc.Build(root, s.bins, "grpcnotrace"); err != nil {
		return nil, err
	}
	if err := localproc.WriteKey(s.keys, "scale"); err != nil {
		return nil, err
	}
	return s, nil
}

// forSize is a copy of s for one size's services, logging into a
// directory of its own.
func (s *rpcServices) forSize(name string) (*rpcServices, error) {
	work := filepath.Join(s.work, strings.NewReplacer(" ", "", "/", "-").Replace(name))
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, err
	}
	return &rpcServices{bins: s.bins, keys: s.keys, work: work}, nil
}

func (s *rpcServices) addr(i int) string { return "127.0.0.1:" + strconv.Itoa(s.ports[i]) }

// common is both services' environment: warnings only, no drain delay,
// tracing off (nothing here collects spans), and the login and sign-up
// limits off: the bench logs in many seeded users from one address,
// which is what those limits exist to refuse.
func (s *rpcServices) common() []string {
	return []string{"LOG_LEVEL=warn", "DRAIN_DELAY=0s", "OTEL_SDK_DISABLED=true"}
}

// start runs both services on the databases at userURL and authURL and
// returns how long the User service took from exec to SERVING.
func (s *rpcServices) start(userURL, authURL string) (time.Duration, error) {
	ports, err := localproc.FreePorts(4)
	if err != nil {
		return 0, err
	}
	s.ports = ports
	s.auth, err = localproc.Start(filepath.Join(s.bins, "auth"), nil, append(s.common(),
		"GRPC_ADDR="+s.addr(0), "HTTP_ADDR="+s.addr(1), "DATABASE_URL="+authURL,
		"JWT_SIGNING_KEYS_DIR="+s.keys, "USER_SERVICE_ADDR="+s.addr(2),
		"LOGIN_RATE_PER_ADDR=0", "LOGIN_RATE_PER_ACCOUNT_ADDR=0", "LOGIN_RATE_PER_ACCOUNT=0"),
		"", filepath.Join(s.work, "auth.log"))
	if err != nil {
		return 0, err
	}
	if _, err := localproc.WaitServing(s.addr(0), s.auth); err != nil {
		return 0, fmt.Errorf("auth service: %w (log %s)", err, s.auth.LogPath)
	}
	return s.startUser(userURL)
}

// startUser starts the User service with its user cache off: the cache
// holds 10,000 users by default, every user of the smallest size but a
// hundredth of 1M, so with it on the small size's GetUser and refreshes
// would mostly be answered from memory and the large size's from the
// database, and the ratio would be the cache's hit rate, not the cost of
// data. Off, every call reads the database at every size (the cached hot
// path is make bench's).
func (s *rpcServices) startUser(userURL string) (time.Duration, error) {
	var err error
	s.user, err = localproc.Start(filepath.Join(s.bins, "user"), nil, append(s.common(),
		"GRPC_ADDR="+s.addr(2), "HTTP_ADDR="+s.addr(3), "DATABASE_URL="+userURL,
		"JWKS_URL=http://"+s.addr(1)+"/.well-known/jwks.json", "USER_CACHE_SIZE=0",
		"BOOTSTRAP_ADMIN_EMAIL="+adminEmail, "BOOTSTRAP_ADMIN_PASSWORD="+adminPassword,
		"SIGNUP_RATE_PER_ADDR=0", "VERIFY_PASSWORD_RATE=0"),
		"", filepath.Join(s.work, "user.log"))
	if err != nil {
		return 0, err
	}
	took, err := localproc.WaitServing(s.addr(2), s.user)
	if err != nil {
		return 0, fmt.Errorf("user service: %w (log %s)", err, s.user.LogPath)
	}
	return took, nil
}

func (s *rpcServices) stop() {
	for _, p := range []*localproc.Proc{s.user, s.auth} {
		if p != nil {
			p.Stop()
		}
	}
	s.user, s.auth = nil, nil
}

// steps are the operations as calls to the running services, each made
// by conc callers at once. ids and emails are the seeded users (every one
// with the password Password); tokens (seeded refresh tokens) and revoke
// (users) are for these calls alone; deep is the id a page 90% into the
// listing starts after, deepRest how many users sort after it. The
// revocations are in ends, to run last: they end sessions the refreshes
// use.
func (s *rpcServices) steps(ctx context.Context, ids, emails, tokens, revoke []string, deep string, deepRest, samples, conc int) (reads, ends []step, closeFn func(), err error) {
	conns := make([]*grpc.ClientConn, 0, 2)
	closeFn = func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}
	for _, a := range []string{s.addr(0), s.addr(2)} {
		c, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeFn()
			return nil, nil, nil, err
		}
		conns = append(conns, c)
	}
	authc, userc := authv1.NewAuthServiceClient(conns[0]), userv1.NewUserServiceClient(conns[1])
	admin := &adminToken{auth: authc}
	if _, err := admin.ctx(ctx); err != nil {
		closeFn()
		return nil, nil, nil, err
	}
	deepToken := user.PageTokenAfter(deep)
	var mu sync.Mutex
	// Seeded, so two runs pick the same rows; nothing here is a secret.
	rng := rand.New(rand.NewPCG(uint64(len(ids)), 2)) //nolint:gosec // reproducible picks, not a secret
	pick := func(list []string) string {
		mu.Lock()
		defer mu.Unlock()
		return list[rng.IntN(len(list))]
	}
	// asAdmin and plain bound each call, so a service that stops answering
	// ends the run with an error instead of holding it.
	asAdmin := func(call func(context.Context) error) error {
		actx, err := admin.ctx(ctx)
		if err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(actx, callTimeout)
		defer cancel()
		return call(actx)
	}
	plain := func(call func(context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		return call(cctx)
	}
	reads = []step{
		{name: "GetUser (RPC, admin token, random user)", n: samples, conc: conc, f: func(int) error {
			return asAdmin(func(ctx context.Context) error {
				_, err := userc.GetUser(ctx, &userv1.GetUserRequest{Id: pick(ids)})
				return err
			})
		}},
		{name: "ListUsers (RPC), first page of 50", n: samples / 4, conc: conc, f: func(int) error {
			return asAdmin(func(ctx context.Context) error {
				_, err := userc.ListUsers(ctx, &userv1.ListUsersRequest{PageSize: 50})
				return err
			})
		}},
		{name: "ListUsers (RPC), page 90% deep", n: samples / 4, conc: conc, f: func(int) error {
			return asAdmin(func(ctx context.Context) error {
				r, err := userc.ListUsers(ctx, &userv1.ListUsersRequest{PageSize: 50, PageToken: deepToken})
				if err != nil {
					return err
				}
				// The first page has 50 users too: check these come after deep.
				us := r.GetUsers()
				if want := min(50, deepRest); len(us) != want {
					return fmt.Errorf("deep page: %d users, want %d", len(us), want)
				}
				if us[0].GetId() <= deep {
					return fmt.Errorf("deep page starts at %s, not after %s", us[0].GetId(), deep)
				}
				return nil
			})
		}},
		// argon2id bounds Login at a few dozen a second on two cores:
		// fewer calls, two at once (the hashing slots), so the figure is
		// the hash and the lookups, not the admission queue.
		{name: "Login (RPC, argon2id), random user", n: max(20, samples/20), conc: min(conc, 2), f: func(int) error {
			return plain(func(ctx context.Context) error {
				_, err := authc.Login(ctx, &authv1.LoginRequest{Email: pick(emails), Password: Password})
				return err
			})
		}},
		{name: "RefreshToken (RPC)", n: len(tokens), conc: conc, f: func(i int) error {
			return plain(func(ctx context.Context) error {
				_, err := authc.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: tokens[i]})
				return err
			})
		}},
	}
	ends = []step{
		{name: "RevokeAllSessions (RPC, admin token, random user)", n: len(revoke), conc: conc, f: func(i int) error {
			return asAdmin(func(ctx context.Context) error {
				_, err := authc.RevokeAllSessions(ctx, &authv1.RevokeAllSessionsRequest{UserId: revoke[i]})
				return err
			})
		}},
	}
	return reads, ends, closeFn, nil
}

// callTimeout bounds one timed call: far past any call's cost, so only a
// service that stopped answering reaches it.
const callTimeout = time.Minute

// adminToken is the bootstrap admin's access token, renewed by logging in
// again once it is minutes old: seeding the later sizes and timing the
// store take longer than a token lives (JWT_ACCESS_EXPIRY, 15 min).
type adminToken struct {
	auth   authv1.AuthServiceClient
	mu     sync.Mutex
	bearer string
	at     time.Time
}

const adminTokenRenew = 5 * time.Minute

// ctx is parent carrying the admin's token.
func (a *adminToken) ctx(parent context.Context) (context.Context, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bearer == "" || time.Since(a.at) > adminTokenRenew {
		lctx, cancel := context.WithTimeout(parent, callTimeout)
		defer cancel()
		login, err := a.auth.Login(lctx, &authv1.LoginRequest{Email: adminEmail, Password: adminPassword})
		if err != nil {
			return nil, fmt.Errorf("admin login: %w", err)
		}
		a.bearer, a.at = "Bearer "+login.GetAccessToken(), time.Now()
	}
	return metadata.AppendToOutgoingContext(parent, "authorization", a.bearer), nil
}

// restarts times the User service's start n times on the seeded database,
// from exec to SERVING: configuration, Open with the migrations (none
// pending), the bootstrap admin check, the listeners. Stopping the one
// before (a graceful stop, on SQLite a last checkpoint) is not timed.
func (s *rpcServices) restarts(userURL string, n int) step {
	return step{name: "start: User service exec to SERVING (RPC)", n: n, conc: 1, timed: func(int) (time.Duration, error) {
		if s.user != nil {
			s.user.Stop()
			s.user = nil
		}
		return s.startUser(userURL)
	}}
}

// timeStep makes st's calls lo to hi-1, st.conc at a time, and records
// each call's latency and the wall time of the whole.
func timeStep(st step, lo, hi int) (op, error) {
	o := op{name: st.name}
	next := make(chan int)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	t0 := time.Now()
	for range max(1, st.conc) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := range next {
				d, err := st.call(i)
				mu.Lock()
				if err != nil && first == nil {
					first = fmt.Errorf("%s: call %d: %w", st.name, i, err)
				}
				mu.Unlock()
				mine = append(mine, d)
			}
			mu.Lock()
			o.d = append(o.d, mine...)
			mu.Unlock()
		}()
	}
	for i := lo; i < hi; i++ {
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	o.wall = time.Since(t0)
	if first != nil {
		return o, first
	}
	if len(o.d) == 0 {
		return o, errors.New(st.name + ": no calls")
	}
	slices.Sort(o.d)
	return o, nil
}
