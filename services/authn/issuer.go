package authn

import (
	"fmt"
	"net/url"
	"strings"
)

// CheckIssuer reports whether issuer can be an issuer identifier (RFC 8414
// §2, OpenID Connect Discovery §3): an absolute http(s) URL with a host and
// no query, fragment or user info. Gatehouse also refuses a trailing slash:
// discovery appends "/.well-known/...", and "iss" must equal the issuer
// byte for byte, so "https://a/" and "https://a" would be two issuers that
// look alike. http is allowed for local development only; in production
// the issuer is https.
func CheckIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	switch {
	case err != nil:
		return fmt.Errorf("issuer %q is not a URL", issuer)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "", u.Opaque != "":
		return fmt.Errorf("issuer %q: want an absolute https URL such as https://auth.example.com", issuer)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(issuer, "#"):
		return fmt.Errorf("issuer %q: no query or fragment allowed", issuer)
	case u.User != nil:
		return fmt.Errorf("issuer %q: no user info allowed", issuer)
	case strings.HasSuffix(issuer, "/"):
		return fmt.Errorf("issuer %q: no trailing slash (tokens must carry it byte for byte)", issuer)
	case u.String() != issuer:
		return fmt.Errorf("issuer %q: not in canonical form; did you mean %q?", issuer, u.String())
	}
	return nil
}

// Well-known paths under an issuer URL (OpenID Connect Discovery 1.0, RFC
// 8414) and the Auth service's JWKS.
const (
	OpenIDConfigurationPath       = "/.well-known/openid-configuration"
	AuthorizationServerConfigPath = "/.well-known/oauth-authorization-server"
	JWKSPath                      = "/.well-known/jwks.json"
)
