package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/services/authn"
)

// JWKSPath is where the public keys are published on the HTTP port.
const JWKSPath = authn.JWKSPath

// wellKnownMaxAge is short because a newly added key must reach verifiers
// before it becomes active; verifiers also refetch on an unknown kid. The
// discovery documents get the same rule: they list the keys' algorithms.
const wellKnownMaxAge = "public, max-age=60, must-revalidate"

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
		serveJSON(w, r, set, "application/jwk-set+json")
	})
}

// metadata is the issuer's discovery document: the fields of OpenID
// Connect Discovery 1.0 and RFC 8414 that apply to an issuer of access
// tokens with no HTTP authorization or token endpoint. Login and refresh
// are gRPC methods (auth.v1.AuthService), so response and grant types are
// honestly empty: no OAuth client can run a flow against this server, but
// every verifier can find the issuer's keys.
type metadata struct {
	Issuer               string   `json:"issuer"`
	JWKSURI              string   `json:"jwks_uri"`
	ResponseTypes        []string `json:"response_types_supported"`
	GrantTypes           []string `json:"grant_types_supported"`
	SubjectTypes         []string `json:"subject_types_supported"`
	SigningAlgs          []string `json:"id_token_signing_alg_values_supported"`
	ServiceDocumentation string   `json:"service_documentation,omitempty"`
}

// MetadataHandler serves the discovery document of issuer, at both
// authn.OpenIDConfigurationPath and authn.AuthorizationServerConfigPath:
// the issuer, where its JWKS is, and the signing algorithms of its keys
// now (HS256 mode publishes no keys, so it lists none: nobody outside can
// verify those tokens). Cached like the JWKS.
func MetadataHandler(issuer string, keys authn.KeySet) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		md := metadata{
			Issuer:        issuer,
			JWKSURI:       issuer + authn.JWKSPath,
			ResponseTypes: []string{},
			GrantTypes:    []string{},
			SubjectTypes:  []string{"public"},
			SigningAlgs:   []string{},
		}
		for _, k := range keys.Keys() {
			if k.Algorithm != authn.AlgHS256 && !slices.Contains(md.SigningAlgs, k.Algorithm) {
				md.SigningAlgs = append(md.SigningAlgs, k.Algorithm)
			}
		}
		slices.Sort(md.SigningAlgs)
		serveJSON(w, r, md, "application/json")
	})
}

// serveJSON writes v with a strong ETag and answers a matching
// If-None-Match with 304.
func serveJSON(w http.ResponseWriter, r *http.Request, v any, contentType string) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "cannot encode document", http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("Cache-Control", wellKnownMaxAge)
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", contentType)
	_, _ = w.Write(body)
}
