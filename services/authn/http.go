package authn

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Middleware returns net/http middleware that demands a valid bearer
// token (RFC 6750 §2.1: `Authorization: Bearer <token>`) on every request
// and puts the verified Claims in the request's context
// (ClaimsFromContext). Refusals follow RFC 6750 §3:
//
//   - no token, or another scheme: 401, `WWW-Authenticate: Bearer
//     realm="<realm>"`;
//   - a bad or expired token: 401 with error="invalid_token" and an
//     error_description of TOKEN_INVALID or TOKEN_EXPIRED's meaning;
//   - two Authorization headers or an empty bearer: 400 invalid_request;
//   - keys not loaded yet: 503 with Retry-After, so the client retries.
//
// realm names the protected service in the challenge; "" leaves it out.
// Put public endpoints (health, metrics) on another handler: everything
// behind the middleware needs a token.
func (v *Verifier) Middleware(realm string) func(http.Handler) http.Handler {
	challenge := "Bearer"
	if realm != "" {
		challenge += fmt.Sprintf(" realm=%q", realm)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			values := r.Header.Values("Authorization")
			if len(values) == 0 {
				refuseHTTP(w, http.StatusUnauthorized, challenge, "", "missing bearer token")
				return
			}
			scheme, token, _ := strings.Cut(values[0], " ")
			token = strings.TrimSpace(token)
			switch {
			case len(values) > 1 || (strings.EqualFold(scheme, bearerScheme) && token == ""):
				refuseHTTP(w, http.StatusBadRequest, challenge, "invalid_request", "send exactly one Authorization: Bearer header")
				return
			case !strings.EqualFold(scheme, bearerScheme):
				// Another scheme (Basic, say) is no token at all: a bare
				// challenge, as for none (RFC 6750 §3.1).
				refuseHTTP(w, http.StatusUnauthorized, challenge, "", "missing bearer token")
				return
			}
			claims, err := v.Verify(r.Context(), token)
			switch {
			case err == nil:
				next.ServeHTTP(w, r.WithContext(ContextWithClaims(r.Context(), claims)))
			case errors.Is(err, ErrExpired):
				refuseHTTP(w, http.StatusUnauthorized, challenge, "invalid_token", "token expired")
			case errors.Is(err, ErrKeysUnavailable):
				w.Header().Set("Retry-After", "1")
				http.Error(w, "authentication temporarily unavailable", http.StatusServiceUnavailable)
			case r.Context().Err() != nil:
				// The client left; nobody reads the answer.
				w.WriteHeader(http.StatusServiceUnavailable)
			default:
				refuseHTTP(w, http.StatusUnauthorized, challenge, "invalid_token", "invalid token")
			}
		})
	}
}

// refuseHTTP answers with a WWW-Authenticate challenge. The description is
// one of this file's fixed strings, never token text.
func refuseHTTP(w http.ResponseWriter, code int, challenge, errCode, description string) {
	if errCode != "" {
		challenge += fmt.Sprintf(", error=%q, error_description=%q", errCode, description)
	}
	w.Header().Set("WWW-Authenticate", challenge)
	http.Error(w, description, code)
}
