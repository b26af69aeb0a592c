package authn

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenSize is the longest token Verify looks at, in bytes. It is checked
// before any decoding so an oversized header cannot make us base64-decode,
// JSON-parse or look up anything. Real Gatehouse tokens are well under 1 KiB.
const MaxTokenSize = 8 << 10

// DefaultLeeway is the clock skew tolerated on exp, nbf and iat. Pods'
// clocks are NTP-synced, so a few seconds is typical; 30s is generous
// without meaningfully extending a token's life.
const DefaultLeeway = 30 * time.Second

// Verifier checks access tokens. It is safe for concurrent use.
type Verifier struct {
	keys       KeySet
	issuer     string
	issuers    map[string]bool // issuer and WithAcceptedIssuers; nil: the parser checks issuer alone
	audience   string
	requireKID bool
	parser     *jwt.Parser
	cache      *verifiedCache // nil: every call verifies
	now        func() time.Time
}

type verifierConfig struct {
	leeway    time.Duration
	now       func() time.Time
	cacheSize int
	accepted  []string
}

// VerifierOption configures NewVerifier.
type VerifierOption func(*verifierConfig)

// WithLeeway sets the clock-skew tolerance for exp, nbf and iat (default
// DefaultLeeway). Negative values are treated as zero.
func WithLeeway(d time.Duration) VerifierOption {
	return func(c *verifierConfig) { c.leeway = max(d, 0) }
}

// WithAcceptedIssuers also accepts tokens whose iss is one of issuers, for
// a change of issuer URL: tokens issued before it, signed by the same keys,
// still name the old issuer until they expire. Trust stays with the key
// set; only the label widens. Remove the old issuer once its tokens are
// past their exp.
func WithAcceptedIssuers(issuers ...string) VerifierOption {
	return func(c *verifierConfig) { c.accepted = append(c.accepted, issuers...) }
}

// WithClock replaces time.Now, for tests that need to move time.
func WithClock(now func() time.Time) VerifierOption {
	return func(c *verifierConfig) { c.now = now }
}

// NewVerifier returns a Verifier that accepts only tokens signed by a key in
// keys, issued by issuer and addressed to audience. Both are required: a
// verifier that skips iss or aud accepts tokens minted for other services.
func NewVerifier(keys KeySet, issuer, audience string, opts ...VerifierOption) (*Verifier, error) {
	if keys == nil {
		return nil, errors.New("authn: NewVerifier: nil key set")
	}
	if issuer == "" || audience == "" {
		return nil, errors.New("authn: NewVerifier: issuer and audience are required")
	}
	cfg := verifierConfig{leeway: DefaultLeeway, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	ko, ok := keys.(kidOptional)
	parserOpts := []jwt.ParserOption{
		// Belt and braces: the keyfunc pins alg to the key, and this list
		// keeps "none" and every algorithm we never issue out early.
		jwt.WithValidMethods([]string{AlgEdDSA, AlgES256, AlgRS256, AlgHS256}),
		jwt.WithExpirationRequired(), // golang-jwt v5 treats exp as optional otherwise
		jwt.WithAudience(audience),
		jwt.WithIssuedAt(), // reject iat in the future
		jwt.WithLeeway(cfg.leeway),
		jwt.WithTimeFunc(cfg.now),
		jwt.WithStrictDecoding(), // one canonical encoding per token: no padding, no stray bits
	}
	var issuers map[string]bool
	if len(cfg.accepted) == 0 {
		parserOpts = append(parserOpts, jwt.WithIssuer(issuer))
	} else {
		issuers = map[string]bool{issuer: true}
		for _, iss := range cfg.accepted {
			if iss == "" {
				return nil, errors.New("authn: NewVerifier: an accepted issuer is empty")
			}
			issuers[iss] = true
		}
	}
	return &Verifier{
		issuers:    issuers,
		keys:       keys,
		issuer:     issuer,
		audience:   audience,
		requireKID: !ok || !ko.allowsMissingKeyID(),
		cache:      newVerifiedCache(cfg.cacheSize),
		now:        cfg.now,
		parser:     jwt.NewParser(parserOpts...),
	}, nil
}

// tokenClaims is the JSON shape of an access token's payload.
type tokenClaims struct {
	jwt.RegisteredClaims
	ClientID       string   `json:"client_id,omitempty"`
	Roles          []string `json:"roles,omitempty"`
	SessionVersion int64    `json:"session_version,omitempty"`
}

// Verify checks token and returns its claims. Rules, in order:
//
//  1. at most MaxTokenSize bytes, and only base64url characters and dots
//     (before any parsing: Go's base64 decoder skips CR and LF, so without
//     this check "sig\n" would verify as well as "sig", and one token
//     would have many spellings);
//  2. three base64url segments with JSON header and payload;
//  3. header: alg not "none" (any case), typ "at+jwt" or
//     "application/at+jwt" (RFC 9068, so an ID token or another kind of JWT
//     from the same issuer cannot be replayed as an access token), no "crit",
//     kid well-formed (ValidKeyID) and present unless the key set is HS256;
//  4. the key named by kid exists and is bound to exactly the header's alg;
//  5. the signature verifies;
//  6. exp present and not passed, iss equal, aud containing our audience,
//     nbf and iat not in the future (each with the leeway), sub present.
//
// Errors wrap ErrInvalidToken (plus ErrExpired or ErrUnknownKey where they
// apply), or ErrKeysUnavailable, or the context's error. Their text never
// contains the token.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if len(token) > MaxTokenSize {
		return nil, invalid("token too large")
	}
	if token == "" {
		return nil, invalid("empty token")
	}
	if v.cache == nil {
		return v.verify(ctx, token)
	}
	// The generation is read before verifying, so a key change that races
	// with this call leaves an entry that the next lookup ignores.
	key, gen := tokenKey(token), v.keys.Generation()
	if claims, ok := v.cache.get(key, gen, v.now()); ok {
		return claims, nil
	}
	claims, err := v.verify(ctx, token)
	if err == nil {
		v.cache.add(key, gen, claims)
	}
	return claims, err
}

// tokenKey is token's cache key, its SHA-256, hashed in place: the copy
// []byte(token) makes of a ~700-byte token was a twentieth of all the
// bytes a cached GetUser allocated. Sum256 only reads its input.
func tokenKey(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token))) //nolint:gosec // read-only view of an immutable string, see above
}

// verify does the full check of Verify, without the cache.
func (v *Verifier) verify(ctx context.Context, token string) (*Claims, error) {
	// Here rather than in Verify: the cache is keyed by the exact token and
	// holds only tokens that passed this, so a cache hit needs no rescan.
	if !urlSafe(token) {
		return nil, invalid("malformed token")
	}
	var (
		tc       tokenClaims
		kid      string
		abortErr error // our own verdict from the keyfunc, reported as is
	)
	_, err := v.parser.ParseWithClaims(token, &tc, func(t *jwt.Token) (any, error) {
		key, err := v.resolveKey(ctx, t.Header)
		if err != nil {
			abortErr = err
			return nil, err
		}
		kid = key.ID
		if kid == "" {
			kid, _ = t.Header["kid"].(string)
		}
		return key.Public, nil
	})
	if abortErr != nil {
		return nil, abortErr
	}
	if err != nil {
		return nil, classify(err, &tc)
	}
	if v.issuers != nil && !v.issuers[tc.Issuer] {
		if tc.Issuer == "" {
			return nil, invalid("missing iss claim")
		}
		return nil, invalid("wrong issuer")
	}
	if tc.Subject == "" {
		return nil, invalid("missing sub claim")
	}
	return claimsOf(&tc, kid), nil
}

// resolveKey applies the header rules and finds the key, in an order that
// does no lookup (and so no I/O) for a header that is wrong anyway.
func (v *Verifier) resolveKey(ctx context.Context, header map[string]any) (Key, error) {
	alg, _ := header["alg"].(string)
	if alg == "" {
		return Key{}, invalid("missing alg")
	}
	if strings.EqualFold(alg, "none") {
		return Key{}, invalid("unsigned tokens are not accepted")
	}
	typ, _ := header["typ"].(string)
	if !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return Key{}, invalid("typ must be at+jwt")
	}
	if _, ok := header["crit"]; ok {
		// RFC 7515 §4.1.11: a recipient must reject critical extensions it
		// does not understand, and we understand none.
		return Key{}, invalid("unsupported critical header")
	}
	var kid string
	if raw, ok := header["kid"]; ok {
		s, isString := raw.(string)
		if !isString || !ValidKeyID(s) {
			return Key{}, invalid("malformed kid")
		}
		kid = s
	} else if v.requireKID {
		return Key{}, invalid("missing kid")
	}

	key, err := v.keys.Lookup(ctx, kid)
	switch {
	case err == nil:
	case errors.Is(err, ErrKeysUnavailable):
		return Key{}, fmt.Errorf("authn: %w", ErrKeysUnavailable)
	case ctx.Err() != nil:
		return Key{}, fmt.Errorf("authn: key lookup: %w", ctx.Err())
	default:
		// ErrUnknownKey, or any other key-set failure: the token cannot be
		// verified with what we hold, which is the client's problem to solve.
		return Key{}, invalid("unknown kid", ErrUnknownKey)
	}
	if key.Algorithm != alg {
		return Key{}, invalid("alg does not match the key's algorithm")
	}
	return key, nil
}

// classify turns a golang-jwt error into one of our fixed reasons. The
// library's own messages are not passed on: they are not part of our
// contract and could in principle quote input.
func classify(err error, tc *tokenClaims) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid("malformed token")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return invalid("unsupported alg")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid("invalid signature or alg")
	// Claim problems: report the ones a refresh cannot fix first, so
	// ErrExpired only tells a client "refresh" when that would help.
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		switch {
		case tc.ExpiresAt == nil:
			return invalid("missing exp claim")
		case tc.Issuer == "":
			return invalid("missing iss claim")
		default:
			return invalid("missing aud claim")
		}
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalid("wrong issuer")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return invalid("wrong audience")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid("token not valid yet")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return invalid("token issued in the future")
	case errors.Is(err, jwt.ErrTokenExpired):
		return invalid("token expired", ErrExpired)
	default:
		return invalid("verification failed")
	}
}

func claimsOf(tc *tokenClaims, kid string) *Claims {
	c := &Claims{
		Subject:        tc.Subject,
		ClientID:       tc.ClientID,
		Roles:          tc.Roles,
		SessionVersion: tc.SessionVersion,
		Issuer:         tc.Issuer,
		Audience:       []string(tc.Audience),
		ID:             tc.ID,
		KeyID:          kid,
	}
	if tc.ExpiresAt != nil {
		c.ExpiresAt = tc.ExpiresAt.Time
	}
	if tc.IssuedAt != nil {
		c.IssuedAt = tc.IssuedAt.Time
	}
	if tc.NotBefore != nil {
		c.NotBefore = tc.NotBefore.Time
	}
	return c
}
