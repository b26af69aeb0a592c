package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authn"
)

// JWKSPath is where the public keys are published on the HTTP port.
const JWKSPath = "/.well-known/jwks.json"

// jwksMaxAge is short because a newly added key must reach verifiers
// before it becomes active; verifiers also refetch on an unknown kid.
const jwksMaxAge = "public, max-age=60, must-revalidate"

// JWKSHandler publishes every loaded public key (never a private or HMAC
// key) with its kid, alg and use "sig". It answers If-None-Match with 304
// so pollers cost nothing while keys are unchanged.
func JWKSHandler(keys authn.KeySet) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
		for _, k := range keys.Keys() {
			if k.Algorithm == authn.AlgHS256 {
				continue
			}
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public, KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"})
		}
		body, err := json.Marshal(set)
		if err != nil {
			http.Error(w, "cannot encode keys", http.StatusInternalServerError)
			return
		}
		sum := sha256.Sum256(body)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		w.Header().Set("Cache-Control", jwksMaxAge)
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	})
}
