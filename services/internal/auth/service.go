package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authn"
)

// Limits on untrusted input before any work is done.
const (
	maxEmailLen        = 254
	maxPasswordLen     = 512 // the User service caps passwords at 128 characters
	maxRefreshTokenLen = 128 // ours are 43 characters
)

// Config holds the token policy.
type Config struct {
	Audience          string        // aud of access tokens
	AccessTTL         time.Duration // JWT_ACCESS_EXPIRY
	RefreshTTL        time.Duration // JWT_REFRESH_EXPIRY, absolute per login
	RefreshIdle       time.Duration // REFRESH_IDLE_TIMEOUT, per token
	ReuseGrace        time.Duration // REFRESH_REUSE_GRACE
	LoginPerEmail     int           // attempts per minute, 0 = unlimited
	LoginPerAddr      int           // attempts per minute, 0 = unlimited
	Status            func() healthpb.HealthCheckResponse_ServingStatus
	Logger            *slog.Logger
	MetricsRegisterer prometheus.Registerer
}

// Service implements auth.v1.AuthService.
type Service struct {
	authv1.UnimplementedAuthServiceServer

	cfg      Config
	issuer   *Issuer
	verifier *authn.Verifier
	users    UserVerifier
	store    RefreshStore
	byEmail  *keyedLimiter
	byAddr   *keyedLimiter
	metrics  *metrics
	log      *slog.Logger
	now      func() time.Time
}

// PublicMethods are every AuthService method: credentials travel in the
// request, not in a bearer token.
func PublicMethods() []string {
	return []string{
		authv1.AuthService_Login_FullMethodName,
		authv1.AuthService_RefreshToken_FullMethodName,
		authv1.AuthService_ValidateToken_FullMethodName,
		authv1.AuthService_RevokeToken_FullMethodName,
		authv1.AuthService_HealthCheck_FullMethodName,
	}
}

// NewService wires the handlers.
func NewService(cfg Config, issuer *Issuer, verifier *authn.Verifier, users UserVerifier, store RefreshStore) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Status == nil {
		cfg.Status = func() healthpb.HealthCheckResponse_ServingStatus { return healthpb.HealthCheckResponse_SERVING }
	}
	m := newMetrics()
	if cfg.MetricsRegisterer != nil {
		cfg.MetricsRegisterer.MustRegister(m.collectors()...)
	}
	return &Service{
		cfg: cfg, issuer: issuer, verifier: verifier, users: users, store: store,
		byEmail: newKeyedLimiter(cfg.LoginPerEmail, 100_000),
		byAddr:  newKeyedLimiter(cfg.LoginPerAddr, 100_000),
		metrics: m, log: cfg.Logger, now: time.Now,
	}
}

func (s *Service) Login(ctx context.Context, req *authv1.LoginRequest) (*authv1.LoginResponse, error) {
	resp, result, err := s.login(ctx, req)
	s.metrics.logins.WithLabelValues(result).Inc()
	if err != nil {
		s.log.InfoContext(ctx, "login failed", "result", result)
		return nil, errorStatus(err)
	}
	return resp, nil
}

func (s *Service) login(ctx context.Context, req *authv1.LoginRequest) (*authv1.LoginResponse, string, error) {
	email := strings.ToLower(strings.TrimSpace(req.GetEmail()))
	switch {
	case email == "" || len(email) > maxEmailLen || !utf8.ValidString(email):
		return nil, "invalid", &fieldError{"email", fmt.Sprintf("required, at most %d bytes of UTF-8", maxEmailLen)}
	case req.GetPassword() == "" || len(req.GetPassword()) > maxPasswordLen:
		return nil, "invalid", &fieldError{"password", fmt.Sprintf("required, at most %d bytes", maxPasswordLen)}
	}
	now := s.now()
	if !s.byAddr.allow(clientAddr(ctx), now) || !s.byEmail.allow(email, now) {
		return nil, "rate_limited", ErrRateLimited
	}
	userID, roles, err := s.users.VerifyPassword(ctx, email, req.GetPassword())
	switch {
	case errors.Is(err, ErrBadCredentials):
		return nil, "bad_credentials", err
	case err != nil:
		s.log.WarnContext(ctx, "login: user service", "error", err)
		return nil, "unavailable", err
	}
	access, refresh, err := s.startFamily(ctx, userID, roles, now)
	if err != nil {
		return nil, "error", err
	}
	s.log.InfoContext(ctx, "login", "user_id", userID)
	return &authv1.LoginResponse{
		AccessToken: access.Token, RefreshToken: refresh, TokenType: "Bearer",
		ExpiresIn: int64(s.cfg.AccessTTL / time.Second),
	}, "success", nil
}

func (s *Service) startFamily(ctx context.Context, userID string, roles []string, now time.Time) (AccessToken, string, error) {
	familyID, err := uuid.NewV7()
	if err != nil {
		return AccessToken{}, "", err
	}
	token, hash, err := newRefreshToken()
	if err != nil {
		return AccessToken{}, "", err
	}
	now = now.UTC().Truncate(time.Microsecond)
	fam := Family{ID: familyID.String(), UserID: userID, Roles: roles, CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL)}
	first := RefreshToken{Hash: hash, FamilyID: fam.ID, IssuedAt: now, IdleExpiresAt: now.Add(s.cfg.RefreshIdle)}
	if err := s.store.CreateFamily(ctx, fam, first); err != nil {
		return AccessToken{}, "", err
	}
	access, err := s.issue(userID, roles)
	if err != nil {
		return AccessToken{}, "", err
	}
	s.metrics.issued.WithLabelValues("refresh").Inc()
	return access, token, nil
}

func (s *Service) issue(userID string, roles []string) (AccessToken, error) {
	tok, err := s.issuer.Issue(userID, roles, s.cfg.Audience, s.cfg.AccessTTL)
	if err != nil {
		return AccessToken{}, err
	}
	s.metrics.issued.WithLabelValues("access").Inc()
	return tok, nil
}

func (s *Service) RefreshToken(ctx context.Context, req *authv1.RefreshTokenRequest) (*authv1.RefreshTokenResponse, error) {
	resp, result, err := s.refresh(ctx, req.GetRefreshToken())
	s.metrics.refreshes.WithLabelValues(result).Inc()
	if err != nil {
		return nil, errorStatus(err)
	}
	return resp, nil
}

func (s *Service) refresh(ctx context.Context, old string) (*authv1.RefreshTokenResponse, string, error) {
	if old == "" || len(old) > maxRefreshTokenLen {
		return nil, "invalid", &fieldError{"refresh_token", "required, as returned by Login or RefreshToken"}
	}
	token, hash, err := newRefreshToken()
	if err != nil {
		return nil, "error", err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	next := RefreshToken{Hash: hash, IssuedAt: now, IdleExpiresAt: now.Add(s.cfg.RefreshIdle)}
	fam, err := s.store.Rotate(ctx, hashRefreshToken(old), next, now, s.cfg.ReuseGrace)
	switch {
	case errors.Is(err, ErrTokenReused):
		s.metrics.reuse.Inc()
		s.log.WarnContext(ctx, "refresh token reuse detected; family revoked")
		return nil, "reused", err
	case errors.Is(err, ErrTokenJustRotated):
		return nil, "concurrent", err
	case errors.Is(err, ErrTokenRevoked):
		return nil, "revoked", err
	case errors.Is(err, ErrTokenExpired):
		return nil, "expired", err
	case errors.Is(err, ErrTokenNotFound):
		return nil, "unknown", err
	case err != nil:
		return nil, "error", err
	}
	access, err := s.issue(fam.UserID, fam.Roles)
	if err != nil {
		return nil, "error", err
	}
	s.metrics.issued.WithLabelValues("refresh").Inc()
	return &authv1.RefreshTokenResponse{
		AccessToken: access.Token, RefreshToken: token, TokenType: "Bearer",
		ExpiresIn: int64(s.cfg.AccessTTL / time.Second),
	}, "success", nil
}

func (s *Service) ValidateToken(ctx context.Context, req *authv1.ValidateTokenRequest) (*authv1.ValidateTokenResponse, error) {
	if req.GetAccessToken() == "" {
		return nil, errorStatus(&fieldError{"access_token", "required"})
	}
	claims, err := s.verifier.Verify(ctx, req.GetAccessToken())
	if err != nil {
		if errors.Is(err, authn.ErrKeysUnavailable) {
			return nil, errorStatus(fmt.Errorf("%w: %w", ErrUnavailable, err))
		}
		return nil, errorStatus(fmt.Errorf("%w: %w", ErrInvalidToken, err))
	}
	return &authv1.ValidateTokenResponse{
		Subject:    claims.Subject,
		Roles:      claims.Roles,
		ExpireTime: timestamppb.New(claims.ExpiresAt),
	}, nil
}

func (s *Service) RevokeToken(ctx context.Context, req *authv1.RevokeTokenRequest) (*authv1.RevokeTokenResponse, error) {
	tok := req.GetRefreshToken()
	if tok == "" || len(tok) > maxRefreshTokenLen {
		return nil, errorStatus(&fieldError{"refresh_token", "required, as returned by Login or RefreshToken"})
	}
	err := s.store.RevokeFamily(ctx, hashRefreshToken(tok), s.now().UTC())
	// RFC 7009: an unknown or already revoked token is not an error, so
	// logout is idempotent and reveals nothing.
	if err != nil && !errors.Is(err, ErrTokenNotFound) {
		return nil, errorStatus(err)
	}
	return &authv1.RevokeTokenResponse{}, nil
}

func (s *Service) HealthCheck(context.Context, *emptypb.Empty) (*authv1.HealthCheckResponse, error) {
	st := authv1.HealthCheckResponse_SERVING_STATUS_NOT_SERVING
	if s.cfg.Status() == healthpb.HealthCheckResponse_SERVING {
		st = authv1.HealthCheckResponse_SERVING_STATUS_SERVING
	}
	return &authv1.HealthCheckResponse{Status: st, Timestamp: timestamppb.New(s.now())}, nil
}

// PurgeLoop deletes expired and long-revoked families every interval until
// ctx ends. Revoked families are kept for a day so reuse of their tokens
// is still recognised (and counted) for a while.
func (s *Service) PurgeLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := s.store.PurgeExpired(ctx, s.now().UTC(), 24*time.Hour)
			if err != nil {
				s.log.WarnContext(ctx, "purging expired refresh tokens", "error", err)
				continue
			}
			if n > 0 {
				s.log.InfoContext(ctx, "purged expired refresh token families", "families", n)
			}
		}
	}
}

// clientAddr is the caller's IP, without port, for per-address limits.
func clientAddr(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return p.Addr.String()
	}
	return host
}
