package authn_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
)

func TestMiddleware(t *testing.T) {
	signer := authntest.NewSigner(t)
	var seen *authn.Claims
	h := signer.Verifier(t).Middleware("orders")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = authn.ClaimsFromContext(r.Context())
		_, _ = w.Write([]byte("ok"))
	}))
	tests := []struct {
		name      string
		headers   []string
		code      int
		challenge string // substring of WWW-Authenticate
		subject   string // claims the handler saw
	}{
		{"valid", []string{"Bearer " + signer.Token(t, "user-1")}, http.StatusOK, "", "user-1"},
		{"scheme in any case", []string{"bearer " + signer.Token(t, "user-2")}, http.StatusOK, "", "user-2"},
		{"missing", nil, http.StatusUnauthorized, `Bearer realm="orders"`, ""},
		{"expired", []string{"Bearer " + signer.Token(t, "u", authntest.ExpiresIn(-time.Hour))}, http.StatusUnauthorized, `error="invalid_token", error_description="token expired"`, ""},
		{"garbage", []string{"Bearer garbage"}, http.StatusUnauthorized, `error="invalid_token", error_description="invalid token"`, ""},
		{"other audience", []string{"Bearer " + signer.Token(t, "u", authntest.Audience("other"))}, http.StatusUnauthorized, `error="invalid_token"`, ""},
		{"basic auth", []string{"Basic dXNlcjpwdw=="}, http.StatusUnauthorized, `Bearer realm="orders"`, ""},
		{"empty bearer", []string{"Bearer "}, http.StatusBadRequest, `error="invalid_request"`, ""},
		{"two headers", []string{"Bearer " + signer.Token(t, "u"), "Bearer " + signer.Token(t, "v")}, http.StatusBadRequest, `error="invalid_request"`, ""},
		{"huge", []string{"Bearer " + strings.Repeat("a", 100_000)}, http.StatusUnauthorized, `error="invalid_token"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			req := httptest.NewRequest(http.MethodGet, "/orders", nil)
			for _, v := range tt.headers {
				req.Header.Add("Authorization", v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.code {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tt.code, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); !strings.Contains(got, tt.challenge) || (tt.challenge == "") != (got == "") {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.challenge)
			}
			if got := ""; seen != nil {
				got = seen.Subject
				if got != tt.subject {
					t.Errorf("handler saw subject %q, want %q", got, tt.subject)
				}
			} else if tt.subject != "" {
				t.Errorf("handler not reached with claims")
			}
			if strings.Contains(rec.Body.String()+rec.Header().Get("WWW-Authenticate"), "aaaa") {
				t.Error("the answer echoes the token")
			}
		})
	}
}

func TestMiddlewareKeysUnavailable(t *testing.T) {
	signer := authntest.NewSigner(t)
	v, err := authn.NewVerifier(unavailableKeySet{signer.KeySet(t)}, signer.Issuer, signer.Audience)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(context.Background())
	req.Header.Set("Authorization", "Bearer "+signer.Token(t, "u"))
	rec := httptest.NewRecorder()
	v.Middleware("")(http.NotFoundHandler()).ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
}
