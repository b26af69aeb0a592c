package app

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/identity"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/config"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/server"
)

// Config is every setting of the User service; the README's config table
// lists the same variables.
type Config struct {
	Server server.Config

	LogLevel slog.Level `env:"LOG_LEVEL" envDefault:"info"`

	DatabaseURL string `env:"DATABASE_URL" envDefault:"sqlite://.data/user.db"`

	AllowSignup                bool          `env:"ALLOW_SIGNUP" envDefault:"true"`
	BootstrapAdminEmail        string        `env:"BOOTSTRAP_ADMIN_EMAIL"`
	BootstrapAdminPassword     config.Secret `env:"BOOTSTRAP_ADMIN_PASSWORD"`
	BootstrapAdminPasswordFile string        `env:"BOOTSTRAP_ADMIN_PASSWORD_FILE"`

	// PasswordChangeRate limits failed ChangePassword attempts per minute
	// per user and client address (a stolen access token cannot guess the
	// current password at leisure); the user's backstop is 3 times that,
	// the address's 10 times. 0 disables the limits.
	PasswordChangeRate int `env:"PASSWORD_CHANGE_RATE" envDefault:"10"`
	// VerifyPasswordRate limits failed VerifyPassword checks per minute
	// per account: a backstop behind the Auth service's login limits
	// (looser than LOGIN_RATE_PER_ACCOUNT, so logins never reach it), for
	// a caller holding the service's credentials. 0 disables it.
	VerifyPasswordRate int `env:"VERIFY_PASSWORD_RATE" envDefault:"100"`
	// ServicePeerNames are the names (DNS or URI subject alternative
	// names) one of which the Auth service's client certificate carries.
	// With TLS on, the service-only methods (VerifyPassword,
	// GetSessionState, EndSessions) need that certificate besides the
	// service token: a leaked token alone is not enough.
	ServicePeerNames []string `env:"SERVICE_PEER_NAMES" envSeparator:"," envDefault:"gatehouse-auth"`
	// SignupRatePerAddr limits anonymous sign-ups per client address: a
	// burst of that many, then that many a minute. 0 disables the limit.
	SignupRatePerAddr int `env:"SIGNUP_RATE_PER_ADDR" envDefault:"5"`
	// SignupHashConcurrency is the hashing budget of anonymous sign-ups,
	// apart from PASSWORD_HASH_CONCURRENCY (logins, password changes), so
	// a sign-up flood cannot starve logins.
	SignupHashConcurrency int `env:"SIGNUP_HASH_CONCURRENCY" envDefault:"1"`
	// PasswordHashMaxWait bounds the wait for a hashing slot: a caller the
	// queue ahead would keep longer is refused before it queues
	// (ResourceExhausted, with the queue's drain time as retry delay).
	PasswordHashMaxWait time.Duration `env:"PASSWORD_HASH_MAX_WAIT" envDefault:"2s"`
	// RateLimitKeys bounds the in-memory buckets (SQLite mode); with
	// PostgreSQL the buckets live in the database, shared by replicas.
	RateLimitKeys int `env:"RATE_LIMIT_KEYS" envDefault:"100000"`

	// PasswordHashConcurrency caps simultaneous argon2id hashes (each
	// uses ~19 MiB); 0 means one per CPU.
	PasswordHashConcurrency int `env:"PASSWORD_HASH_CONCURRENCY" envDefault:"0"`

	// At most one key source verifies access tokens. With none set, the
	// keys are the issuer's: JWT_ISSUER's discovery document names its
	// JWKS.
	JWKSURL string `env:"JWKS_URL"`
	// JWKSRefreshInterval is how often the JWKS is refetched, which bounds
	// how long a key removed from the Auth service keeps verifying here.
	// An unknown kid triggers a refetch at once (at most every 30s).
	JWKSRefreshInterval time.Duration `env:"JWKS_REFRESH_INTERVAL" envDefault:"5m"`
	JWTPublicKeysDir    string        `env:"JWT_PUBLIC_KEYS_DIR"`
	JWTSecret           config.Secret `env:"JWT_SECRET"`
	// TokenCacheSize bounds the cache of verified access tokens (kept
	// until each token's exp, dropped when the key set changes); 0 turns
	// it off and every call checks a signature.
	TokenCacheSize int `env:"TOKEN_CACHE_SIZE" envDefault:"10000"`
	// JWTIssuer is the Auth service's issuer URL; unset, it is
	// identity.DefaultIssuer.
	JWTIssuer string `env:"JWT_ISSUER"`
	// JWTAcceptedIssuers are earlier issuers whose tokens (signed by the
	// same keys) still verify: set the old one while changing JWT_ISSUER,
	// remove it once JWT_ACCESS_EXPIRY has passed.
	JWTAcceptedIssuers []string `env:"JWT_ACCEPTED_ISSUERS"`
	JWTAudience        string   `env:"JWT_AUDIENCE" envDefault:"gatehouse"`

	// UserCacheSize bounds the users kept in memory for GetUser, by id.
	// Used on SQLite only, where this process is the database's one writer
	// and so always knows when an entry changes; 0 turns it off.
	UserCacheSize int `env:"USER_CACHE_SIZE" envDefault:"10000"`
}

// LoadConfig reads the environment with the User service's defaults.
func LoadConfig(environ []string) (Config, error) {
	c := Config{Server: server.Config{GRPCAddr: ":50051", HTTPAddr: ":8081"}}
	if err := config.Load(&c, environ); err != nil {
		return Config{}, err
	}
	return c, nil
}

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
	sources := 0
	for _, set := range []bool{c.JWKSURL != "", c.JWTPublicKeysDir != "", c.JWTSecret != ""} {
		if set {
			sources++
		}
	}
	if sources > 1 {
		errs = append(errs, errors.New("set only one of JWKS_URL, JWT_PUBLIC_KEYS_DIR and JWT_SECRET"))
	}
	if c.JWKSURL != "" && !strings.HasPrefix(c.JWKSURL, "http://") && !strings.HasPrefix(c.JWKSURL, "https://") {
		errs = append(errs, fmt.Errorf("JWKS_URL must be an http(s) URL, got %q", c.JWKSURL))
	}
	if c.Server.TLS.Enabled() && strings.HasPrefix(c.JWKSURL, "http://") {
		// Whoever can answer a plaintext fetch can add a key and mint
		// any token: with TLS on, keys come over TLS too.
		errs = append(errs, fmt.Errorf("JWKS_URL must be https:// when TLS_CERT_FILE is set, got %q", c.JWKSURL))
	}
	if c.VerifyPasswordRate < 0 {
		errs = append(errs, fmt.Errorf("VERIFY_PASSWORD_RATE must not be negative (0 disables), got %d", c.VerifyPasswordRate))
	}
	if c.Server.TLS.Enabled() && (len(c.ServicePeerNames) == 0 || slices.Contains(c.ServicePeerNames, "")) {
		errs = append(errs, fmt.Errorf("SERVICE_PEER_NAMES must name the Auth service's certificate (no empty names) when TLS_CERT_FILE is set, got %q", c.ServicePeerNames))
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		errs = append(errs, fmt.Errorf("JWT_SECRET must be at least 32 bytes (HS256), got %d", len(c.JWTSecret)))
	}
	if c.BootstrapAdminPassword != "" && c.BootstrapAdminPasswordFile != "" {
		errs = append(errs, errors.New("set only one of BOOTSTRAP_ADMIN_PASSWORD and BOOTSTRAP_ADMIN_PASSWORD_FILE"))
	}
	hasPassword := c.BootstrapAdminPassword != "" || c.BootstrapAdminPasswordFile != ""
	if c.BootstrapAdminEmail == "" && hasPassword {
		errs = append(errs, errors.New("BOOTSTRAP_ADMIN_PASSWORD needs BOOTSTRAP_ADMIN_EMAIL"))
	}
	if c.BootstrapAdminEmail != "" && !hasPassword {
		errs = append(errs, errors.New("BOOTSTRAP_ADMIN_EMAIL needs BOOTSTRAP_ADMIN_PASSWORD or BOOTSTRAP_ADMIN_PASSWORD_FILE"))
	}
	if c.JWKSRefreshInterval < time.Second {
		errs = append(errs, fmt.Errorf("JWKS_REFRESH_INTERVAL must be at least 1s, got %s", c.JWKSRefreshInterval))
	}
	if c.PasswordHashConcurrency < 0 {
		errs = append(errs, fmt.Errorf("PASSWORD_HASH_CONCURRENCY must not be negative, got %d", c.PasswordHashConcurrency))
	}
	if c.SignupHashConcurrency < 1 {
		errs = append(errs, fmt.Errorf("SIGNUP_HASH_CONCURRENCY must be at least 1, got %d", c.SignupHashConcurrency))
	}
	if c.PasswordChangeRate < 0 || c.SignupRatePerAddr < 0 || c.PasswordHashMaxWait < 0 {
		errs = append(errs, errors.New("PASSWORD_CHANGE_RATE, SIGNUP_RATE_PER_ADDR and PASSWORD_HASH_MAX_WAIT must not be negative (0 disables)"))
	}
	if c.RateLimitKeys < 1 {
		errs = append(errs, fmt.Errorf("RATE_LIMIT_KEYS must be positive, got %d", c.RateLimitKeys))
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
	if c.Server.TLS.Enabled() && sources == 0 && strings.HasPrefix(c.JWTIssuer, "http://") {
		// Keys found through the issuer's discovery document: whoever
		// answers a plaintext fetch chooses them.
		errs = append(errs, fmt.Errorf("JWT_ISSUER must be https:// when TLS_CERT_FILE is set and keys come from its discovery document, got %q (or set JWKS_URL)", c.JWTIssuer))
	}
	if c.TokenCacheSize < 0 {
		errs = append(errs, fmt.Errorf("TOKEN_CACHE_SIZE must not be negative, got %d", c.TokenCacheSize))
	}
	if c.UserCacheSize < 0 {
		errs = append(errs, fmt.Errorf("USER_CACHE_SIZE must not be negative, got %d", c.UserCacheSize))
	}
	return errors.Join(errs...)
}

// bootstrapPassword returns the admin password from the variable or the
// file (a mounted Secret), trimming the newline editors add.
func (c *Config) bootstrapPassword() (string, error) {
	if c.BootstrapAdminPasswordFile == "" {
		return c.BootstrapAdminPassword.Reveal(), nil
	}
	b, err := os.ReadFile(c.BootstrapAdminPasswordFile)
	if err != nil {
		return "", fmt.Errorf("BOOTSTRAP_ADMIN_PASSWORD_FILE: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
