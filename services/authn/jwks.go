package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/time/rate"
)

// JWKS defaults. The refresh interval is what bounds how long a key the
// Auth service stopped publishing keeps verifying; the refetch interval is
// what bounds how hard tokens with made-up kids can make us hit the Auth
// service.
const (
	DefaultJWKSRefreshInterval = 5 * time.Minute
	DefaultJWKSRefetchInterval = 30 * time.Second
	DefaultJWKSMaxBodySize     = 1 << 20
	defaultJWKSFetchTimeout    = 10 * time.Second
	defaultJWKSMinBackoff      = time.Second
	defaultJWKSMaxBackoff      = time.Minute
	maxJWKSKeys                = 100
)

// JWKSKeySet holds the keys published at a JWKS URL (the Auth service's
// /.well-known/jwks.json). It is what lets a service verify tokens from a
// separately deployed Auth service with no shared secret, and follow its key
// rotation without a restart:
//
//   - the set is fetched in the background until the first success
//     (exponential backoff), then refreshed every refresh interval;
//   - a lookup of an unknown kid triggers an immediate refetch, at most once
//     per refetch interval. Concurrent lookups share one in-flight fetch;
//     once the budget is spent they fail fast with ErrUnknownKey instead of
//     queueing, so garbage kids cannot turn into a request flood;
//   - a fetch that fails (network, status, oversized or invalid body, no
//     usable key) keeps the previous set.
//
// Only signature keys are taken: "use" empty or "sig", key type Ed25519,
// P-256 or RSA ≥ 2048 bits, "alg" absent (inferred from the key) or equal to
// the key's bound algorithm, a valid kid, and no private parameters. Other
// entries are skipped with a log line, so a JWKS that also lists encryption
// keys still works.
type JWKSKeySet struct {
	url string
	// discover, when set, finds the JWKS URL before each fetch (from the
	// issuer's discovery document); url is then only a label.
	discover func(ctx context.Context, c *http.Client) (string, error)
	client   *http.Client
	logger   *slog.Logger
	cfg      jwksConfig
	limiter  *rate.Limiter
	state    atomic.Pointer[keyState] // nil until the first successful fetch
	loaded   chan struct{}            // closed by the first successful fetch

	fetchMu sync.Mutex // one fetch at a time, so an older response never overwrites a newer one
	// fetchOK is whether the last fetch succeeded: the keys in force stay
	// after a failure, but a key rotated in meanwhile is unknown here.
	fetchOK atomic.Bool

	mu       sync.Mutex
	inflight chan struct{} // non-nil while an unknown-kid refetch runs; closed when done
	closed   bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

var _ KeySet = (*JWKSKeySet)(nil)

// keyState is an immutable snapshot, swapped atomically so lookups never
// take a lock.
type keyState struct {
	keys map[string]Key
	gen  uint64
}

type jwksConfig struct {
	refresh    time.Duration
	refetch    time.Duration
	maxBody    int64
	minBackoff time.Duration
}

// JWKSOption configures NewJWKSKeySet.
type JWKSOption func(*jwksConfig)

// WithJWKSRefreshInterval sets the periodic refresh (default
// DefaultJWKSRefreshInterval). Values <= 0 keep the default.
func WithJWKSRefreshInterval(d time.Duration) JWKSOption {
	return func(c *jwksConfig) {
		if d > 0 {
			c.refresh = d
		}
	}
}

// WithJWKSRefetchInterval sets the minimum time between refetches caused by
// unknown kids (default DefaultJWKSRefetchInterval). Values <= 0 keep the
// default: an unlimited refetch would hand attackers a request amplifier.
func WithJWKSRefetchInterval(d time.Duration) JWKSOption {
	return func(c *jwksConfig) {
		if d > 0 {
			c.refetch = d
		}
	}
}

// WithJWKSMaxBodySize bounds the JWKS response (default
// DefaultJWKSMaxBodySize). Values <= 0 keep the default.
func WithJWKSMaxBodySize(n int64) JWKSOption {
	return func(c *jwksConfig) {
		if n > 0 {
			c.maxBody = n
		}
	}
}

// WithJWKSRetryBackoff sets the first retry delay after a failed fetch
// (default 1s); it doubles up to one minute (or the refresh interval, if
// shorter). Values <= 0 keep the default.
func WithJWKSRetryBackoff(d time.Duration) JWKSOption {
	return func(c *jwksConfig) {
		if d > 0 {
			c.minBackoff = d
		}
	}
}

// NewJWKSKeySet starts fetching the JWKS at rawURL in the background and
// returns at once; Ready reports when keys are loaded. The background work
// stops when ctx is done or Close is called. client may be nil, in which
// case one with a 10s timeout is used; every fetch is additionally bounded
// by a 10s context timeout.
func NewJWKSKeySet(ctx context.Context, rawURL string, client *http.Client, logger *slog.Logger, opts ...JWKSOption) (*JWKSKeySet, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("authn: JWKS URL %q: want an absolute http(s) URL", rawURL)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return newJWKSKeySet(ctx, rawURL, client, logger.With("jwks_url", u.Redacted()), opts, nil) // no userinfo password in logs
}

func newJWKSKeySet(ctx context.Context, rawURL string, client *http.Client, logger *slog.Logger, opts []JWKSOption,
	discover func(context.Context, *http.Client) (string, error)) (*JWKSKeySet, error) {
	cfg := jwksConfig{
		refresh:    DefaultJWKSRefreshInterval,
		refetch:    DefaultJWKSRefetchInterval,
		maxBody:    DefaultJWKSMaxBodySize,
		minBackoff: defaultJWKSMinBackoff,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if client == nil {
		client = &http.Client{Timeout: defaultJWKSFetchTimeout}
	}
	client = noDowngrade(client)
	s := &JWKSKeySet{
		url:      rawURL,
		loaded:   make(chan struct{}),
		discover: discover,
		client:   client,
		logger:   logger,
		cfg:      cfg,
		limiter:  rate.NewLimiter(rate.Every(cfg.refetch), 1),
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// run fetches until the first success, then refreshes periodically; after a
// failure it retries with backoff rather than waiting a whole interval.
func (s *JWKSKeySet) run() {
	defer s.wg.Done()
	maxBackoff := min(defaultJWKSMaxBackoff, s.cfg.refresh)
	backoff := min(s.cfg.minBackoff, maxBackoff)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-timer.C:
		}
		wait := s.cfg.refresh
		if err := s.Refresh(s.ctx); err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.logger.Warn("JWKS fetch failed", "error", err, "ready", s.Ready(), "retry_in", backoff)
			// Jitter (50-100%) so replicas restarted together do not retry
			// in lockstep against a recovering Auth service.
			wait = backoff/2 + rand.N(backoff/2+1) //nolint:gosec // retry jitter needs no cryptographic randomness
			backoff = min(backoff*2, maxBackoff)
		} else {
			backoff = min(s.cfg.minBackoff, maxBackoff)
		}
		timer.Reset(wait)
	}
}

// Refresh fetches the JWKS now, bypassing the refetch rate limit; the
// background loop and unknown-kid refetches use it. On error the previous
// keys stay in force.
func (s *JWKSKeySet) Refresh(ctx context.Context) error {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	keys, err := s.fetch(ctx)
	s.fetchOK.Store(err == nil)
	if err != nil {
		return err
	}
	old := s.state.Load()
	switch {
	case old == nil:
		s.state.Store(&keyState{keys: keys, gen: 1})
		close(s.loaded) // fetchMu makes this the only first store
		s.logger.Info("JWKS loaded", "kids", keyIDs(keys))
	case !sameKeys(old.keys, keys):
		s.state.Store(&keyState{keys: keys, gen: old.gen + 1})
		s.logger.Info("JWKS changed", "kids", keyIDs(keys), "previous_kids", keyIDs(old.keys))
	}
	return nil
}

func (s *JWKSKeySet) fetch(ctx context.Context) (map[string]Key, error) {
	jwksURL := s.url
	if s.discover != nil {
		u, err := s.discover(ctx, s.client)
		if err != nil {
			return nil, err
		}
		jwksURL = u
	}
	ctx, cancel := context.WithTimeout(ctx, defaultJWKSFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jwksURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS endpoint answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading JWKS: %w", err)
	}
	if int64(len(body)) > s.cfg.maxBody {
		return nil, fmt.Errorf("JWKS larger than %d bytes", s.cfg.maxBody)
	}
	return parseJWKS(body, s.logger)
}

// parseJWKS keeps the usable signature keys of a JWKS document. Each entry
// is parsed on its own so one unsupported entry does not discard the rest
// (go-jose's JSONWebKeySet would fail as a whole).
func parseJWKS(body []byte, logger *slog.Logger) (map[string]Key, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, errors.New("JWKS is not valid JSON")
	}
	keys := make(map[string]Key)
	for i, raw := range doc.Keys {
		if i == maxJWKSKeys {
			logger.Warn("JWKS has too many keys; ignoring the rest", "max", maxJWKSKeys)
			break
		}
		key, err := parseJWK(raw)
		if err != nil {
			logger.Warn("skipping JWKS entry", "index", i, "error", err)
			continue
		}
		if _, dup := keys[key.ID]; dup {
			logger.Warn("skipping JWKS entry with duplicate kid", "index", i, "kid", key.ID)
			continue
		}
		keys[key.ID] = key
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS has no usable signature key")
	}
	return keys, nil
}

func parseJWK(raw json.RawMessage) (Key, error) {
	// go-jose parses private JWKs too, and warns that doing so on untrusted
	// input is unsafe (an RSA private key is costly to validate). A public
	// JWKS never has these members, so refuse before go-jose sees them.
	var private struct {
		D, P, Q, DP, DQ, QI, K, Priv json.RawMessage
	}
	if err := json.Unmarshal(raw, &private); err != nil {
		return Key{}, errors.New("entry is not a JSON object")
	}
	if private.D != nil || private.P != nil || private.Q != nil || private.DP != nil ||
		private.DQ != nil || private.QI != nil || private.K != nil || private.Priv != nil {
		return Key{}, errors.New("entry holds private or symmetric key material")
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return Key{}, fmt.Errorf("unsupported key: %w", err)
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return Key{}, fmt.Errorf("use %q is not sig", truncate(jwk.Use, 16))
	}
	if !ValidKeyID(jwk.KeyID) {
		return Key{}, errors.New("missing or malformed kid")
	}
	key, err := NewKey(jwk.KeyID, jwk.Key)
	if err != nil {
		return Key{}, err
	}
	if key.Algorithm == AlgHS256 {
		return Key{}, errors.New("symmetric keys are not accepted from a JWKS")
	}
	if jwk.Algorithm != "" && jwk.Algorithm != key.Algorithm {
		return Key{}, fmt.Errorf("kid %s: alg %q does not match key type (%s)", key.ID, truncate(jwk.Algorithm, 16), key.Algorithm)
	}
	return key, nil
}

// Lookup implements KeySet. A known kid is answered from memory. An unknown
// one waits for (or starts, if the rate limit allows) one refetch, bounded
// by ctx; otherwise it fails at once with ErrUnknownKey.
func (s *JWKSKeySet) Lookup(ctx context.Context, kid string) (Key, error) {
	if !ValidKeyID(kid) {
		return Key{}, ErrUnknownKey
	}
	st := s.state.Load()
	if st == nil {
		// The background loop is already retrying; piling lookups onto it
		// would only add load to an endpoint that is failing.
		return Key{}, ErrKeysUnavailable
	}
	if k, ok := st.keys[kid]; ok {
		return k, nil
	}

	s.mu.Lock()
	if k, ok := s.state.Load().keys[kid]; ok { // a refetch may have just landed
		s.mu.Unlock()
		return k, nil
	}
	done := s.inflight
	if done == nil {
		if s.closed || !s.limiter.Allow() {
			s.mu.Unlock()
			return Key{}, ErrUnknownKey
		}
		done = make(chan struct{})
		s.inflight = done
		s.wg.Add(1)
		// The fetch runs on the key set's context, not the caller's: one
		// impatient caller must not cancel the fetch other callers wait on.
		go func() {
			defer s.wg.Done()
			if err := s.Refresh(s.ctx); err != nil {
				s.logger.Warn("JWKS refetch for unknown kid failed", "error", err)
			}
			s.mu.Lock()
			s.inflight = nil
			s.mu.Unlock()
			close(done)
		}()
	}
	s.mu.Unlock()

	select {
	case <-done:
	case <-ctx.Done():
		return Key{}, ctx.Err()
	}
	if k, ok := s.state.Load().keys[kid]; ok {
		return k, nil
	}
	return Key{}, ErrUnknownKey
}

// Wait blocks until the first keys are loaded, or ctx ends (an error
// wrapping ErrKeysUnavailable). Until then Verify answers
// ErrKeysUnavailable; a service that would rather not start taking traffic
// before it can verify waits here, or reports Ready in its health check.
func (s *JWKSKeySet) Wait(ctx context.Context) error {
	select {
	case <-s.loaded:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrKeysUnavailable, ctx.Err())
	}
}

// Ready implements KeySet: true once a fetch has succeeded.
func (s *JWKSKeySet) Ready() bool { return s.state.Load() != nil }

// LastFetchOK reports whether the most recent fetch of the JWKS (periodic,
// or for an unknown kid) succeeded; false before the first. While it is
// false the keys of the last success stay in force, so tokens keep
// verifying, but one signed by a key published since is refused: export
// it to alert on (the User service's gatehouse_jwks_fetch_ok).
func (s *JWKSKeySet) LastFetchOK() bool { return s.fetchOK.Load() }

// Keys implements KeySet; nil before the first successful fetch.
func (s *JWKSKeySet) Keys() []Key {
	if st := s.state.Load(); st != nil {
		return sortedKeys(st.keys)
	}
	return nil
}

// Generation implements KeySet; 0 before the first successful fetch.
func (s *JWKSKeySet) Generation() uint64 {
	if st := s.state.Load(); st != nil {
		return st.gen
	}
	return 0
}

// Close stops background fetching and waits for in-flight fetches to end.
// The last fetched keys remain usable.
func (s *JWKSKeySet) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
	})
	return nil
}
