package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gatehouse-dev/gatehouse/services/api/apidesc"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authz"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/buildinfo"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/config"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/ratelimit"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/redact"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/server"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/telemetry"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/tlsfiles"
	"github.com/gatehouse-dev/gatehouse/services/internal/user"
	"github.com/gatehouse-dev/gatehouse/services/internal/user/password"
	"github.com/gatehouse-dev/gatehouse/services/internal/user/store"
)

// ServiceName names the service in logs, traces and metrics.
const ServiceName = "user"

// Options are the process-level dependencies a test may replace.
type Options struct {
	Logger  *slog.Logger
	Tracing []telemetry.TracingOption
	// PasswordParams overrides argon2id's cost (tests use cheap params).
	PasswordParams *password.Params
}

// App is a wired User service, ready to serve.
type App struct {
	Server  *server.Server
	Service *user.Service
	Metrics *telemetry.Metrics
	log     *slog.Logger
	db      *database.DB
	keys    authn.KeySet
	tls     *tlsfiles.Files
	tracing *telemetry.Tracing
	limits  ratelimit.Store
	// userCache, on PostgreSQL, is kept correct across replicas by the
	// users table's notifications, which serve listens for.
	userCache *store.Cached
}

// New opens the database (running migrations), loads the key source,
// creates the bootstrap admin and assembles the server. On error it
// releases whatever it had opened.
func New(ctx context.Context, cfg Config, o Options) (_ *App, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	a := &App{log: o.Logger}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	a.log.Info("starting", append([]any{"version", buildinfo.Version}, config.Attrs(&cfg)...)...)

	if a.tracing, err = telemetry.SetupTracing(ctx, ServiceName, buildinfo.Version, o.Tracing...); err != nil {
		return nil, err
	}
	if a.db, err = database.Open(ctx, cfg.DatabaseURL, store.Migrations); err != nil {
		return nil, fmt.Errorf("DATABASE_URL %s: %w", redact.URL(cfg.DatabaseURL), err)
	}
	if a.tls, err = tlsfiles.Open(cfg.Server.TLS); err != nil {
		return nil, err
	}
	if a.keys, err = openKeySet(ctx, cfg, a.tls, a.log); err != nil {
		return nil, err
	}
	verifier, err := authn.NewVerifier(a.keys, cfg.JWTIssuer, cfg.JWTAudience, authn.WithCache(cfg.TokenCacheSize),
		authn.WithAcceptedIssuers(cfg.JWTAcceptedIssuers...))
	if err != nil {
		return nil, err
	}
	params := password.DefaultParams()
	if o.PasswordParams != nil {
		params = *o.PasswordParams
	}
	// Two hashing budgets: logins and password changes, and anonymous
	// sign-ups, so a sign-up flood cannot starve logins. Memory for
	// hashing is bounded by (both concurrencies) x argon2id's memory.
	hasher, err := password.New(params, cfg.PasswordHashConcurrency, password.WithMaxWait(cfg.PasswordHashMaxWait))
	if err != nil {
		return nil, err
	}
	signupHasher := hasher.Budget(cfg.SignupHashConcurrency)
	// In memory for the one replica SQLite allows; in the shared
	// database with PostgreSQL, so replicas enforce one limit.
	if a.limits, err = ratelimit.ForDatabase(ctx, a.db, cfg.RateLimitKeys); err != nil {
		return nil, err
	}
	clients, err := ratelimit.NewClients(cfg.Server.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("TRUSTED_PROXIES: %w", err)
	}
	var users user.Store = store.New(a.db)
	if a.db.Dialect() == database.DialectSQLite {
		// On SQLite this process is the database's one writer.
		users = store.NewCached(users, cfg.UserCacheSize)
	} else {
		// On PostgreSQL other replicas write too: the cache forgets what
		// the users table announces, and serves nothing while not
		// listening (Serve starts the listener).
		users, a.userCache = store.NewShared(users, cfg.UserCacheSize)
	}
	a.Service = user.NewService(users, hasher, user.Options{
		AllowSignup:  cfg.AllowSignup,
		SignupHasher: signupHasher,
		Clients:      clients,
		Limits:       a.limits,
		PasswordChanges: ratelimit.Attempts{
			PerPair:    ratelimit.PerMinute(cfg.PasswordChangeRate),
			PerAccount: ratelimit.PerMinute(3 * cfg.PasswordChangeRate),
			PerAddress: ratelimit.PerMinute(10 * cfg.PasswordChangeRate),
			Trust:      30 * 24 * time.Hour,
		},
		SignupsPerAddress: ratelimit.PerMinute(cfg.SignupRatePerAddr),
		PasswordVerifications: ratelimit.Attempts{
			PerAccount: ratelimit.PerMinute(cfg.VerifyPasswordRate),
		},
		Status: func() healthpb.HealthCheckResponse_ServingStatus {
			return a.Server.Status(userv1.UserService_ServiceDesc.ServiceName)
		},
		Logger: a.log,
	})

	// One policy declares every method's access: authn takes its public
	// methods from it, authz enforces the rest against the caller as it is
	// now (ResolveCaller reads the user store).
	policy := user.Policy(cfg.AllowSignup)
	authenticate, err := authn.NewInterceptor(verifier, policy.PublicMethods(),
		authn.WithPublicServices(policy.PublicServices...),
		authn.WithAnonymousMethods(policy.AnonymousMethods()...),
		authn.WithInterceptorLogger(a.log))
	if err != nil {
		return nil, err
	}
	authzOpts := []authz.Option{authz.WithLogger(a.log)}
	if a.tls.Serving() {
		names := cfg.ServicePeerNames
		authzOpts = append(authzOpts, authz.WithServicePeer(
			func(ctx context.Context) bool { return tlsfiles.PeerIs(ctx, names) },
			fmt.Sprintf("a client certificate naming %s (SERVICE_PEER_NAMES)", strings.Join(names, " or "))))
	}
	authorize, err := authz.NewInterceptor(policy, a.Service.ResolveCaller, user.RoleAdmin, authzOpts...)
	if err != nil {
		return nil, err
	}

	a.Metrics = telemetry.NewMetrics()
	a.Metrics.MustRegister(hashingMetrics(map[string]*password.Hasher{"main": hasher, "signup": signupHasher})...)
	if ks, ok := a.keys.(interface{ LastFetchOK() bool }); ok {
		// JWKS mode: the keys come over the network and can go stale
		// while the service stays ready; the alert GatehouseJWKSFetchFailing
		// reads this.
		a.Metrics.MustRegister(boolGauge("gatehouse_jwks_fetch_ok",
			"1 if the last fetch of the issuer's JWKS succeeded, 0 if it failed (the keys of the last success stay in force; a key published since is unknown).",
			ks.LastFetchOK))
	}
	if c := a.userCache; c != nil {
		a.Metrics.MustRegister(boolGauge("gatehouse_user_cache_live",
			"1 while this replica hears of every change to users (LISTEN on PostgreSQL) and may answer from its user cache, 0 while it reads every user from the database instead.",
			c.Live))
	}
	a.Server = server.New(cfg.Server, server.Options{
		// Reflection serves the contracts with their comments.
		Descriptors: apidesc.Files(),
		Logger:      a.log,
		Metrics:     a.Metrics,
		Tracer:      a.tracing.Provider,
		Unary:       []grpc.UnaryServerInterceptor{authenticate.UnaryServerInterceptor(), authorize.UnaryServerInterceptor()},
		Stream:      []grpc.StreamServerInterceptor{authenticate.StreamServerInterceptor(), authorize.StreamServerInterceptor()},
		TLS:         a.tls,
		Checks: []server.Check{
			{Name: "database", Fn: a.db.Ping},
			{Name: "keys", Fn: func(context.Context) error {
				if !a.keys.Ready() {
					return errors.New("verification keys not loaded yet")
				}
				return nil
			}},
		},
	})
	userv1.RegisterUserServiceServer(a.Server.GRPC, a.Service)

	if cfg.BootstrapAdminEmail != "" {
		pw, err := cfg.bootstrapPassword()
		if err != nil {
			return nil, err
		}
		if err := a.Service.EnsureAdmin(ctx, cfg.BootstrapAdminEmail, pw); err != nil {
			return nil, fmt.Errorf("bootstrap admin: %w", err)
		}
	}
	releaseStartupMemory()
	return a, nil
}

// hashingMetrics exports what password hashing costs, per budget: the
// argon2id computations run (what a flood makes the service pay) and the
// slots in use (how close the budget is to making callers wait).
func hashingMetrics(budgets map[string]*password.Hasher) []prometheus.Collector {
	computations := prometheus.NewDesc("gatehouse_password_hashes_total",
		"argon2id computations run, by budget (main: logins and password changes; signup: anonymous sign-ups) and op (hash, verify).",
		[]string{"budget", "op"}, nil)
	inUse := prometheus.NewDesc("gatehouse_password_hash_slots",
		"argon2id computations running now and the most that may, by budget.", []string{"budget", "state"}, nil)
	return []prometheus.Collector{collectorFunc{[]*prometheus.Desc{computations, inUse}, func(ch chan<- prometheus.Metric) {
		for budget, h := range budgets {
			hashes, verifies := h.Computations()
			ch <- prometheus.MustNewConstMetric(computations, prometheus.CounterValue, float64(hashes), budget, "hash")
			ch <- prometheus.MustNewConstMetric(computations, prometheus.CounterValue, float64(verifies), budget, "verify")
			capacity, used := h.Slots()
			ch <- prometheus.MustNewConstMetric(inUse, prometheus.GaugeValue, float64(used), budget, "in_use")
			ch <- prometheus.MustNewConstMetric(inUse, prometheus.GaugeValue, float64(capacity), budget, "capacity")
		}
	}}}
}

// boolGauge is a gauge of 1 while f reports true and 0 otherwise, read
// when scraped.
func boolGauge(name, help string, f func() bool) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
		if f() {
			return 1
		}
		return 0
	})
}

// collectorFunc is a prometheus.Collector reading its values when scraped.
type collectorFunc struct {
	descs   []*prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// releaseStartupMemory hands back to the OS what start-up used once
// (migrations, the argon2id dummy and bootstrap hashes, ~19 MiB each),
// instead of waiting for the background scavenger, so an idle replica's
// RSS reflects its steady state.
func releaseStartupMemory() { debug.FreeOSMemory() }

// Serve serves on the given listeners until ctx ends, shuts down
// gracefully, flushes traces and closes the database.
func (a *App) Serve(ctx context.Context, ls server.Listeners) error {
	return a.serve(ctx, func(ctx context.Context) error { return a.Server.Serve(ctx, ls) })
}

// serve runs serve with the rate-limit purge (and, on PostgreSQL, the user
// cache's listener) beside it, then releases
// everything.
func (a *App) serve(ctx context.Context, serve func(context.Context) error) error {
	purgeCtx, stopPurge := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { ratelimit.PurgeLoop(purgeCtx, a.limits, 10*time.Minute, a.log) })
	if c := a.userCache; c != nil {
		wg.Go(func() {
			_ = a.db.Listen(purgeCtx, database.Listener{
				Channel: store.ChangesChannel, Notify: c.Forget, Live: c.SetLive, Log: a.log,
			})
		})
	}
	err := serve(ctx)
	stopPurge()
	wg.Wait()
	a.close()
	return err
}

// Build is server.Builder for this service: configuration from environ,
// JSON logs to stdout, everything wired. services/user/main.go passes it
// to server.RunProcess.
func Build(ctx context.Context, environ []string, stdout io.Writer) (server.Process, error) {
	cfg, err := LoadConfig(environ)
	if err != nil {
		return nil, err
	}
	return New(ctx, cfg, Options{Logger: telemetry.NewLogger(stdout, cfg.LogLevel, ServiceName)})
}

// ForceStop ends a graceful shutdown at once.
func (a *App) ForceStop() { a.Server.ForceStop() }

// Run listens on the configured addresses and serves until ctx ends.
func (a *App) Run(ctx context.Context) error {
	return a.serve(ctx, a.Server.Run)
}

func (a *App) close() {
	if a.Server != nil {
		// Stops the gRPC server's stream workers when New failed after
		// assembling it or the App was never served; a no-op after Serve.
		a.Server.GRPC.Stop()
	}
	a.tracing.Flush(a.log)
	if c, ok := a.keys.(io.Closer); ok {
		_ = c.Close()
	}
	a.tls.Close()
	if a.db != nil {
		if err := a.db.Close(); err != nil {
			a.log.Warn("closing database", "error", err)
		}
	}
}

func openKeySet(ctx context.Context, cfg Config, tls *tlsfiles.Files, log *slog.Logger) (authn.KeySet, error) {
	switch {
	case cfg.JWTSecret != "":
		log.Warn("JWT_SECRET set: HS256 simple mode; every holder of the secret can mint tokens, and keys cannot rotate without downtime")
		return authn.NewSecretKeySet([]byte(cfg.JWTSecret.Reveal()))
	case cfg.JWTPublicKeysDir != "":
		ks, err := authn.NewDirKeySet(ctx, cfg.JWTPublicKeysDir, log)
		if err != nil {
			return nil, fmt.Errorf("JWT_PUBLIC_KEYS_DIR: %w", err)
		}
		return ks, nil
	}
	client := &http.Client{Timeout: 5 * time.Second}
	if t := tls.HTTPTransport(); t != nil {
		// The Auth service's certificate is checked against TLS_CA_FILE
		// as it is at each connection.
		client.Transport = t
	}
	if cfg.JWKSURL == "" {
		ks, err := authn.NewIssuerKeySet(ctx, cfg.JWTIssuer, client, log,
			authn.WithJWKSRefreshInterval(cfg.JWKSRefreshInterval))
		if err != nil {
			return nil, fmt.Errorf("JWT_ISSUER: %w", err)
		}
		return ks, nil
	}
	ks, err := authn.NewJWKSKeySet(ctx, cfg.JWKSURL, client, log,
		authn.WithJWKSRefreshInterval(cfg.JWKSRefreshInterval))
	if err != nil {
		return nil, fmt.Errorf("JWKS_URL: %w", err)
	}
	return ks, nil
}
