package app

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/identity"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/config"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/server"
)

// Config is every setting of the Auth service; the README's config table
// lists the same variables.
type Config struct {
	Server server.Config

	LogLevel    slog.Level `env:"LOG_LEVEL" envDefault:"info"`
	DatabaseURL string     `env:"DATABASE_URL" envDefault:"sqlite://.data/auth.db"`

	// Signing: a directory of PEM private keys (kid = file name without
	// extension), or the HS256 simple mode.
	JWTSigningKeysDir string        `env:"JWT_SIGNING_KEYS_DIR"`
	JWTActiveKeyID    string        `env:"JWT_ACTIVE_KEY_ID"`
	JWTSecret         config.Secret `env:"JWT_SECRET"`
	// TokenCacheSize bounds the cache of verified access tokens (kept
	// until each token's exp, dropped when the key set changes); 0 turns
	// it off and every call checks a signature.
	TokenCacheSize int `env:"TOKEN_CACHE_SIZE" envDefault:"10000"`
	// JWTIssuer is the issuer URL: the "iss" of every token, and where
	// discovery finds /.well-known/openid-configuration. Unset, it is
	// identity.DefaultIssuer.
	JWTIssuer string `env:"JWT_ISSUER"`
	// JWTAcceptedIssuers are earlier issuers whose tokens (signed by the
	// same keys) still verify: set the old one while changing JWT_ISSUER,
	// remove it once JWT_ACCESS_EXPIRY has passed.
	JWTAcceptedIssuers []string `env:"JWT_ACCEPTED_ISSUERS"`
	JWTAudience        string   `env:"JWT_AUDIENCE" envDefault:"gatehouse"`
	// ClientIDs are the clients that may log in; a Login naming none is
	// the first one's. See identity.ValidClientID for the form.
	ClientIDs []string `env:"CLIENT_IDS" envDefault:"gatehouse"`

	AccessExpiry       config.Minutes `env:"JWT_ACCESS_EXPIRY" envDefault:"15m"`
	RefreshExpiry      time.Duration  `env:"JWT_REFRESH_EXPIRY" envDefault:"720h"`
	RefreshIdleTimeout time.Duration  `env:"REFRESH_IDLE_TIMEOUT" envDefault:"168h"`
	RefreshReuseGrace  time.Duration  `env:"REFRESH_REUSE_GRACE" envDefault:"0s"`
	RefreshPurgeEvery  time.Duration  `env:"REFRESH_PURGE_INTERVAL" envDefault:"10m"`

	UserServiceAddr     string        `env:"USER_SERVICE_ADDR" envDefault:"localhost:50051"`
	UserServiceAudience string        `env:"USER_SERVICE_AUDIENCE" envDefault:"gatehouse"`
	ServiceTokenTTL     time.Duration `env:"SERVICE_TOKEN_TTL" envDefault:"5m"`

	// Failed logins per minute (a burst of that many, refilled over a
	// minute), by key; successful logins are not counted. 0 disables a
	// rule. See ratelimit.Attempts.
	LoginRatePerAccountAddr int           `env:"LOGIN_RATE_PER_ACCOUNT_ADDR" envDefault:"10"`
	LoginRatePerAddr        int           `env:"LOGIN_RATE_PER_ADDR" envDefault:"100"`
	LoginRatePerAccount     int           `env:"LOGIN_RATE_PER_ACCOUNT" envDefault:"50"`
	LoginTrust              time.Duration `env:"LOGIN_TRUST" envDefault:"720h"`
	// LegacyLoginRatePerEmail is the old name of LOGIN_RATE_PER_ACCOUNT_ADDR,
	// whose meaning changed (per email and address now): refused at start
	// so an upgrade does not silently keep the old limit's number.
	LegacyLoginRatePerEmail string `env:"LOGIN_RATE_PER_EMAIL"`
	// RateLimitKeys bounds the in-memory buckets (SQLite mode); with
	// PostgreSQL the buckets live in the database, shared by replicas.
	RateLimitKeys int `env:"RATE_LIMIT_KEYS" envDefault:"100000"`
}

// LoadConfig reads the environment with the Auth service's defaults.
func LoadConfig(environ []string) (Config, error) {
	c := Config{Server: server.Config{GRPCAddr: ":50052", HTTPAddr: ":8082"}}
	if err := config.Load(&c, environ); err != nil {
		return Config{}, err
	}
	return c, nil
}

// errNoKeys tells an operator exactly how to get going.
var errNoKeys = errors.New("no signing keys: set JWT_SIGNING_KEYS_DIR to a directory of PEM private keys " +
	"(create one with `make keys`, or `openssl genpkey -algorithm ed25519 -out keys/$(date +%F).pem`), " +
	"or set JWT_SECRET to at least 32 random bytes for the HS256 simple mode")

// Default fills the settings whose default depends on others: the issuer
// is https when the services serve TLS.
func (c *Config) Default() {
	if c.JWTIssuer == "" {
		c.JWTIssuer = identity.DefaultIssuer(c.Server.TLS.Enabled())
	}
}

// Validate checks the settings that depend on each other.
func (c *Config) Validate() error {
	errs := []error{c.Server.Validate()}
	switch {
	case c.JWTSigningKeysDir == "" && c.JWTSecret == "":
		errs = append(errs, errNoKeys)
	case c.JWTSigningKeysDir != "" && c.JWTSecret != "":
		errs = append(errs, errors.New("set only one of JWT_SIGNING_KEYS_DIR and JWT_SECRET"))
	case c.JWTSecret != "" && len(c.JWTSecret) < 32:
		errs = append(errs, fmt.Errorf("JWT_SECRET must be at least 32 bytes (HS256), got %d", len(c.JWTSecret)))
	}
	if c.JWTActiveKeyID != "" && c.JWTSigningKeysDir == "" {
		errs = append(errs, errors.New("JWT_ACTIVE_KEY_ID needs JWT_SIGNING_KEYS_DIR"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"JWT_REFRESH_EXPIRY", c.RefreshExpiry},
		{"REFRESH_IDLE_TIMEOUT", c.RefreshIdleTimeout},
		{"REFRESH_PURGE_INTERVAL", c.RefreshPurgeEvery},
		{"SERVICE_TOKEN_TTL", c.ServiceTokenTTL},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", d.name, d.v))
		}
	}
	if c.RefreshReuseGrace < 0 || c.RefreshReuseGrace > time.Minute {
		errs = append(errs, fmt.Errorf("REFRESH_REUSE_GRACE must be between 0s and 1m, got %s", c.RefreshReuseGrace))
	}
	if c.AccessExpiry.Duration() >= c.RefreshExpiry {
		errs = append(errs, fmt.Errorf("JWT_ACCESS_EXPIRY (%s) must be shorter than JWT_REFRESH_EXPIRY (%s)", c.AccessExpiry, c.RefreshExpiry))
	}
	if c.LoginRatePerAccountAddr < 0 || c.LoginRatePerAddr < 0 || c.LoginRatePerAccount < 0 || c.LoginTrust < 0 {
		errs = append(errs, errors.New("LOGIN_RATE_PER_ACCOUNT_ADDR, LOGIN_RATE_PER_ADDR, LOGIN_RATE_PER_ACCOUNT and LOGIN_TRUST must not be negative (0 disables)"))
	}
	if c.LegacyLoginRatePerEmail != "" {
		errs = append(errs, errors.New("LOGIN_RATE_PER_EMAIL was replaced by LOGIN_RATE_PER_ACCOUNT_ADDR (failed logins per minute per email and client address) and LOGIN_RATE_PER_ACCOUNT (per email, from addresses without a recent success); unset it"))
	}
	if c.RateLimitKeys < 1 {
		errs = append(errs, fmt.Errorf("RATE_LIMIT_KEYS must be positive, got %d", c.RateLimitKeys))
	}
	if c.UserServiceAddr == "" {
		errs = append(errs, errors.New("USER_SERVICE_ADDR must not be empty"))
	}
	if c.TokenCacheSize < 0 {
		errs = append(errs, fmt.Errorf("TOKEN_CACHE_SIZE must not be negative, got %d", c.TokenCacheSize))
	}
	if err := authn.CheckIssuer(c.JWTIssuer); err != nil {
		errs = append(errs, fmt.Errorf("JWT_ISSUER: %w", err))
	}
	if c.JWTAudience == "" {
		errs = append(errs, errors.New("JWT_AUDIENCE must not be empty"))
	}
	if slices.Contains(c.JWTAcceptedIssuers, "") {
		errs = append(errs, errors.New("JWT_ACCEPTED_ISSUERS must not name an empty issuer"))
	}
	if len(c.ClientIDs) == 0 {
		errs = append(errs, errors.New("CLIENT_IDS must name at least one client"))
	}
	for _, id := range c.ClientIDs {
		switch {
		case !identity.ValidClientID(id):
			errs = append(errs, fmt.Errorf("CLIENT_IDS: %q is not a client id: 1-64 characters of [A-Za-z0-9._:-]", id))
		case id == identity.ServiceSubject:
			// The Auth service's own tokens name it: a user's must not.
			errs = append(errs, fmt.Errorf("CLIENT_IDS: %q is the Auth service's own client id", id))
		}
	}
	if c.Server.TLS.Enabled() && strings.HasPrefix(c.JWTIssuer, "http://") {
		// The discovery document would send verifiers to a plaintext JWKS
		// on a port that speaks only TLS.
		errs = append(errs, fmt.Errorf("JWT_ISSUER must be https:// when TLS_CERT_FILE is set, got %q", c.JWTIssuer))
	}
	return errors.Join(errs...)
}
