package authn

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// maxMetadataSize bounds a discovery document; real ones are a few KiB.
const maxMetadataSize = 64 << 10

// Metadata is the part of an issuer's discovery document (OpenID Connect
// Discovery 1.0 §3, RFC 8414 §2) a verifier needs.
type Metadata struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
	// SigningAlgorithms is id_token_signing_alg_values_supported: the
	// algorithms of the keys the issuer publishes.
	SigningAlgorithms []string `json:"id_token_signing_alg_values_supported,omitempty"`
}

// Discover fetches issuer's OpenID configuration and checks it: its
// "issuer" must equal issuer exactly (OpenID Connect Discovery §4.3; else a
// document could redirect trust to another issuer), and its jwks_uri must
// be an absolute URL, https when the issuer is. client may be nil
// (http.DefaultClient with a 10s timeout).
func Discover(ctx context.Context, client *http.Client, issuer string) (Metadata, error) {
	if err := CheckIssuer(issuer); err != nil {
		return Metadata{}, fmt.Errorf("authn: %w", err)
	}
	if client == nil {
		client = &http.Client{Timeout: defaultJWKSFetchTimeout}
	}
	client = noDowngrade(client)
	ctx, cancel := context.WithTimeout(ctx, defaultJWKSFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, issuer+OpenIDConfigurationPath, nil)
	if err != nil {
		return Metadata{}, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return Metadata{}, fmt.Errorf("authn: discovery: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return Metadata{}, fmt.Errorf("authn: discovery: %s answered %s", issuer+OpenIDConfigurationPath, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataSize+1))
	if err != nil {
		return Metadata{}, fmt.Errorf("authn: discovery: reading: %w", err)
	}
	if len(body) > maxMetadataSize {
		return Metadata{}, fmt.Errorf("authn: discovery: document larger than %d bytes", maxMetadataSize)
	}
	return parseMetadata(body, issuer)
}

func parseMetadata(body []byte, issuer string) (Metadata, error) {
	var md Metadata
	if err := json.Unmarshal(body, &md); err != nil {
		return Metadata{}, fmt.Errorf("authn: discovery: not a JSON object")
	}
	if md.Issuer != issuer {
		return Metadata{}, fmt.Errorf("authn: discovery: document names issuer %q, want %q", truncate(md.Issuer, 256), issuer)
	}
	u, err := url.Parse(md.JWKSURI)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return Metadata{}, fmt.Errorf("authn: discovery: jwks_uri %q is not an absolute http(s) URL", truncate(md.JWKSURI, 256))
	case u.Scheme == "http" && strings.HasPrefix(issuer, "https:"):
		return Metadata{}, fmt.Errorf("authn: discovery: jwks_uri %q is plaintext under an https issuer", truncate(md.JWKSURI, 256))
	}
	return md, nil
}

// NewIssuerKeySet is a JWKSKeySet configured from the issuer URL alone:
// each fetch reads the issuer's discovery document, then the jwks_uri it
// names. It has the rotation behaviour of NewJWKSKeySet (background
// refresh, refetch on an unknown kid, previous keys kept on failure) and
// follows a jwks_uri that moves. Like NewJWKSKeySet it returns at once and
// retries until the issuer answers; Ready reports when keys are loaded.
func NewIssuerKeySet(ctx context.Context, issuer string, client *http.Client, logger *slog.Logger, opts ...JWKSOption) (*JWKSKeySet, error) {
	if err := CheckIssuer(issuer); err != nil {
		return nil, fmt.Errorf("authn: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s, err := newJWKSKeySet(ctx, issuer+JWKSPath, client, logger.With("issuer", issuer), opts, func(ctx context.Context, c *http.Client) (string, error) {
		md, err := Discover(ctx, c, issuer)
		return md.JWKSURI, err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// maxRedirects bounds the redirects a discovery or JWKS fetch follows.
const maxRedirects = 3

// noDowngrade returns a copy of c that follows at most maxRedirects
// redirects and never one from https to http: keys fetched in plaintext
// could come from anyone on the path, whatever the URL first named.
func noDowngrade(c *http.Client) *http.Client {
	cc := *c
	next := c.CheckRedirect
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("authn: refusing a redirect from https to %s", req.URL.Redacted())
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("authn: more than %d redirects", maxRedirects)
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return &cc
}
