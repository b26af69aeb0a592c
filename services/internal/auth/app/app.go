package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gatehouse-dev/gatehouse/services/api/apidesc"
	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/auth"
	"github.com/gatehouse-dev/gatehouse/services/internal/auth/store"
	"github.com/gatehouse-dev/gatehouse/services/internal/identity"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authz"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/buildinfo"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/config"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/ratelimit"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/redact"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/server"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/telemetry"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/tlsfiles"
)

// ServiceName names the service in logs, traces and metrics.
const ServiceName = "auth"

// Options are the process-level dependencies a test may replace.
type Options struct {
	Logger  *slog.Logger
	Tracing []telemetry.TracingOption
	// UserConn replaces the connection to the User service (tests).
	UserConn grpc.ClientConnInterface
}

// App is a wired Auth service, ready to serve.
type App struct {
	Server  *server.Server
	Service *auth.Service
	Issuer  *auth.Issuer
	Keys    authn.KeySet
	Metrics *telemetry.Metrics

	cfg      Config
	log      *slog.Logger
	db       *database.DB
	userConn *grpc.ClientConn
	tls      *tlsfiles.Files
	tracing  *telemetry.Tracing
	closers  []io.Closer
	limits   ratelimit.Store
}

// New opens the database, loads the signing keys, connects (lazily) to the
// User service and assembles the server. On error it releases whatever it
// had opened.
func New(ctx context.Context, cfg Config, o Options) (_ *App, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	a := &App{cfg: cfg, log: o.Logger}
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
	if err := a.openKeys(ctx); err != nil {
		return nil, err
	}
	if a.tls, err = tlsfiles.Open(cfg.Server.TLS); err != nil {
		return nil, err
	}
	verifier, err := authn.NewVerifier(a.Keys, cfg.JWTIssuer, cfg.JWTAudience, authn.WithCache(cfg.TokenCacheSize),
		authn.WithAcceptedIssuers(cfg.JWTAcceptedIssuers...))
	if err != nil {
		return nil, err
	}

	userConn := o.UserConn
	if userConn == nil {
		// dns:/// resolves every address of the User service (a headless
		// Service lists each pod) and round_robin spreads logins over
		// them; a ClusterIP would pin this connection to one pod.
		// With TLS configured, the User service's certificate is checked
		// for the host of USER_SERVICE_ADDR and this service presents its
		// own, which the User service's service-only methods require.
		creds := insecure.NewCredentials()
		if c := a.tls.ClientCredentials(); c != nil {
			creds = c
		}
		a.userConn, err = grpc.NewClient("dns:///"+cfg.UserServiceAddr,
			grpc.WithTransportCredentials(creds),
			grpc.WithPerRPCCredentials(auth.NewServiceCredentials(a.Issuer, cfg.UserServiceAudience, cfg.ServiceTokenTTL)),
			grpc.WithDefaultServiceConfig(auth.UserClientRetryPolicy),
			grpc.WithStatsHandler(otelgrpc.NewClientHandler(
				otelgrpc.WithTracerProvider(a.tracing.Provider),
				otelgrpc.WithMeterProvider(noop.NewMeterProvider()),
			)),
		)
		if err != nil {
			return nil, fmt.Errorf("USER_SERVICE_ADDR %s: %w", cfg.UserServiceAddr, err)
		}
		userConn = a.userConn
	}

	// Login limits in memory for the one replica SQLite allows; in the
	// shared database with PostgreSQL, so replicas enforce one limit.
	limits, err := ratelimit.ForDatabase(ctx, a.db, cfg.RateLimitKeys)
	if err != nil {
		return nil, err
	}
	clients, err := ratelimit.NewClients(cfg.Server.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("TRUSTED_PROXIES: %w", err)
	}
	a.limits = limits
	a.Metrics = telemetry.NewMetrics()
	a.Service = auth.NewService(auth.Config{
		Audience:    cfg.JWTAudience,
		ClientIDs:   cfg.ClientIDs,
		AccessTTL:   cfg.AccessExpiry.Duration(),
		RefreshTTL:  cfg.RefreshExpiry,
		RefreshIdle: cfg.RefreshIdleTimeout,
		ReuseGrace:  cfg.RefreshReuseGrace,
		Clients:     clients,
		Logins: ratelimit.Attempts{
			Store:      limits,
			Scope:      "login",
			PerPair:    ratelimit.PerMinute(cfg.LoginRatePerAccountAddr),
			PerAddress: ratelimit.PerMinute(cfg.LoginRatePerAddr),
			PerAccount: ratelimit.PerMinute(cfg.LoginRatePerAccount),
			Trust:      cfg.LoginTrust,
		},
		Status: func() healthpb.HealthCheckResponse_ServingStatus {
			return a.Server.Status(authv1.AuthService_ServiceDesc.ServiceName)
		},
		Logger:            a.log,
		MetricsRegisterer: a.Metrics.Registry,
	}, a.Issuer, verifier, auth.NewGRPCUsers(userConn), store.New(a.db))

	// One policy declares every method's access: authn takes its public
	// methods from it, authz enforces the rest (RevokeAllSessions) against
	// the caller as the User service reports it now.
	policy := auth.Policy()
	authenticate, err := authn.NewInterceptor(verifier, policy.PublicMethods(),
		authn.WithPublicServices(policy.PublicServices...),
		authn.WithAnonymousMethods(policy.AnonymousMethods()...),
		authn.WithInterceptorLogger(a.log))
	if err != nil {
		return nil, err
	}
	authorize, err := authz.NewInterceptor(policy, a.Service.ResolveCaller, identity.RoleAdmin, authz.WithLogger(a.log))
	if err != nil {
		return nil, err
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
			// "keys" on both services: one label value for the alert.
			{Name: "keys", Fn: func(context.Context) error {
				if a.Issuer.ActiveKeyID() == "" && cfg.JWTSecret == "" {
					return errors.New("active signing key not loaded")
				}
				return nil
			}},
		},
	})
	authv1.RegisterAuthServiceServer(a.Server.GRPC, a.Service)
	a.Server.HTTP.Handle("GET "+auth.JWKSPath, auth.JWKSHandler(a.Keys))
	metadata := auth.MetadataHandler(cfg.JWTIssuer, a.Keys)
	a.Server.HTTP.Handle("GET "+authn.OpenIDConfigurationPath, metadata)
	a.Server.HTTP.Handle("GET "+authn.AuthorizationServerConfigPath, metadata)
	// Return what start-up used once (migrations, key parsing) to the OS
	// now rather than at the scavenger's pace.
	debug.FreeOSMemory()
	return a, nil
}

func (a *App) openKeys(ctx context.Context) error {
	cfg := a.cfg
	if cfg.JWTSecret != "" {
		a.log.Warn("JWT_SECRET set: HS256 simple mode; every verifier holds the signing secret and it cannot rotate without downtime")
		ks, err := authn.NewSecretKeySet([]byte(cfg.JWTSecret.Reveal()))
		if err != nil {
			return fmt.Errorf("JWT_SECRET: %w", err)
		}
		a.Keys = ks
		a.Issuer, err = auth.NewSecretIssuer([]byte(cfg.JWTSecret.Reveal()), cfg.JWTIssuer)
		return err
	}
	ks, err := auth.OpenSigningKeyDir(ctx, cfg.JWTSigningKeysDir, a.log)
	if err != nil {
		if errors.Is(err, authn.ErrNoKeyFiles) {
			return fmt.Errorf("JWT_SIGNING_KEYS_DIR %s: %w", cfg.JWTSigningKeysDir, errNoKeys)
		}
		return fmt.Errorf("JWT_SIGNING_KEYS_DIR: %w", err)
	}
	a.closers = append(a.closers, ks)
	a.Keys = ks
	if len(ks.SignerIDs()) == 0 {
		return fmt.Errorf("JWT_SIGNING_KEYS_DIR %s holds only public keys: %w", cfg.JWTSigningKeysDir, errNoKeys)
	}
	if a.Issuer, err = auth.NewKeyIssuer(ks, cfg.JWTSigningKeysDir, cfg.JWTActiveKeyID, cfg.JWTIssuer); err != nil {
		return fmt.Errorf("JWT_ACTIVE_KEY_ID: %w", err)
	}
	a.log.Info("signing keys loaded", "kids", ks.SignerIDs(), "active", a.Issuer.ActiveKeyID())
	return nil
}

// Serve serves on the given listeners until ctx ends, purging expired
// refresh tokens meanwhile; then it shuts down and releases everything.
func (a *App) Serve(ctx context.Context, ls server.Listeners) error {
	return a.serve(ctx, func(ctx context.Context) error { return a.Server.Serve(ctx, ls) })
}

// Build is server.Builder for this service: configuration from environ,
// JSON logs to stdout, everything wired. services/auth/main.go passes it
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

func (a *App) serve(ctx context.Context, serve func(context.Context) error) error {
	purgeCtx, stopPurge := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { a.Service.PurgeLoop(purgeCtx, a.cfg.RefreshPurgeEvery) })
	wg.Go(func() { ratelimit.PurgeLoop(purgeCtx, a.limits, a.cfg.RefreshPurgeEvery, a.log) })
	err := serve(ctx)
	stopPurge()
	wg.Wait()
	a.close()
	return err
}

func (a *App) close() {
	if a.Server != nil {
		// Stops the gRPC server's stream workers when New failed after
		// assembling it or the App was never served; a no-op after Serve.
		a.Server.GRPC.Stop()
	}
	if a.userConn != nil {
		_ = a.userConn.Close()
	}
	a.tracing.Flush(a.log)
	a.tls.Close()
	for _, c := range a.closers {
		_ = c.Close()
	}
	if a.db != nil {
		if err := a.db.Close(); err != nil {
			a.log.Warn("closing database", "error", err)
		}
	}
}
