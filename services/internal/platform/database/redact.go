package database

import (
	"net/url"
	"regexp"
	"strings"
)

const redacted = "xxxxx"

// secretParam matches key=value pairs whose key names a secret, in a URL
// query or a key/value connection string.
var secretParam = regexp.MustCompile(`(?i)\b([a-z_]*(?:pass|secret|token)[a-z_]*=)[^&\s]*`)

// RedactURL returns url with any password masked, for logs and error
// messages: the password in the user info and the values of query
// parameters such as password= or sslpassword=. Input that does not parse
// as a URL is masked generously rather than risk printing a secret.
func RedactURL(raw string) string {
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
			u.User = url.UserPassword(u.User.Username(), redacted)
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
				q[k] = []string{redacted}
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
				userinfo = userinfo[:colon+1] + redacted
			}
			s = s[:i+3] + userinfo + rest[at:]
		}
	}
	return secretParam.ReplaceAllString(s, "${1}"+redacted)
}
