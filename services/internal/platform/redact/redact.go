package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every secret.
const Mask = "xxxxx"

// secretParam matches key=value pairs whose key names a secret, in a URL
// query or a key/value connection string.
var secretParam = regexp.MustCompile(`(?i)\b([a-z_]*(?:pass|secret|token)[a-z_]*=)[^&\s]*`)

// URL returns raw with any password masked, for logs and error messages:
// the password in the user info (escaped or not, whatever characters it
// holds), the values of query parameters such as password= or
// sslpassword=, and the secret-looking pairs of a key=value connection
// string ("host=db password=..."). Input that does not parse as a URL is
// masked generously rather than risk printing a secret; anything without
// a secret is returned unchanged.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || strings.Contains(u.Path+u.RawQuery+u.Fragment+u.Opaque, "@") {
		// An unescaped '/', '?' or '#' in a password makes the parser split
		// it into the host or path, and a key/value connection string is no
		// URL at all; then only a textual cut is safe.
		return redactText(raw)
	}
	changed := false
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), Mask)
			changed = true
		}
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return redactText(raw)
		}
		for k := range q {
			if secretParam.MatchString(k + "=") {
				q[k] = []string{Mask}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	if !changed {
		return raw
	}
	return u.String()
}

// redactText masks everything between the scheme's "://" user name and the
// last '@', and every secret-looking key=value pair.
func redactText(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			userinfo := rest[:at]
			if colon := strings.Index(userinfo, ":"); colon >= 0 {
				userinfo = userinfo[:colon+1] + Mask
			}
			s = s[:i+3] + userinfo + rest[at:]
		}
	}
	return secretParam.ReplaceAllString(s, "${1}"+Mask)
}
