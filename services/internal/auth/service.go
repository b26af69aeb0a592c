package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/identity"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authz"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/ratelimit"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/telemetry"
)

// Limits on untrusted input before any work is done.
const (
	maxEmailLen        = 254
	maxPasswordLen     = 512 // the User service caps passwords at 128 characters
	maxRefreshTokenLen = 128 // ours are 43 characters
)

// Config holds the token policy.
type Config struct {
	Audience string // aud of access tokens
	// ClientIDs are the clients that may log in (CLIENT_IDS); a Login
	// without client_id is the first one's.
	ClientIDs   []string
	AccessTTL   time.Duration // JWT_ACCESS_EXPIRY
	RefreshTTL  time.Duration // JWT_REFRESH_EXPIRY, absolute per login
	RefreshIdle time.Duration // REFRESH_IDLE_TIMEOUT, per token
	ReuseGrace  time.Duration // REFRESH_REUSE_GRACE
	// Logins limits failed logins (keys: canonical email, client address);
	// its Store is set by the caller. A zero value limits nothing.
	Logins ratelimit.Attempts
	// Clients tells client addresses apart (trusted proxies); nil: the
	// TCP peer.
	Clients           *ratelimit.Clients
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
	users    Users
	store    RefreshStore
	logins   *ratelimit.Attempts
	metrics  *metrics
	log      *slog.Logger
	sampled  *telemetry.Sampler // lines a client can repeat at will
	now      func() time.Time
}

// Policy is the one declaration of who may call each AuthService method.
// Every method but RevokeAllSessions is anonymous: its credentials travel
// in the request, and a bearer token sent anyway is not read, so a client
// that attaches its expired token to every call can still log in and
// refresh. RevokeAllSessions acts on a user, so it needs that user's token
// or an admin's, judged by the user as it is now (ResolveCaller).
func Policy() authz.Policy {
	return authz.Policy{
		Methods: map[string]authz.Access{
			authv1.AuthService_Login_FullMethodName:             authz.Anonymous,
			authv1.AuthService_RefreshToken_FullMethodName:      authz.Anonymous,
			authv1.AuthService_ValidateToken_FullMethodName:     authz.Anonymous,
			authv1.AuthService_RevokeToken_FullMethodName:       authz.Anonymous,
			authv1.AuthService_HealthCheck_FullMethodName:       authz.Anonymous,
			authv1.AuthService_RevokeAllSessions_FullMethodName: authz.SelfOrAdmin,
		},
		PublicServices: authn.PublicInfrastructureServices(),
	}
}

// NewService wires the handlers.
func NewService(cfg Config, issuer *Issuer, verifier *authn.Verifier, users Users, store RefreshStore) *Service {
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
		cfg: cfg, issuer: issuer, verifier: verifier, users: users, store: store, logins: &cfg.Logins,
		metrics: m, log: cfg.Logger, now: time.Now,
		sampled: telemetry.NewSampler(telemetry.SamplePerKey, telemetry.SampleTotal),
	}
}

func (s *Service) Login(ctx context.Context, req *authv1.LoginRequest) (*authv1.LoginResponse, error) {
	resp, result, err := s.login(ctx, req)
	s.metrics.logins.WithLabelValues(result).Inc()
	if err != nil {
		s.sampled.Log(ctx, s.log, slog.LevelInfo, "login "+result, "login refused", "result", result)
		return nil, s.fail(ctx, err)
	}
	return resp, nil
}

func (s *Service) login(ctx context.Context, req *authv1.LoginRequest) (*authv1.LoginResponse, string, error) {
	if len(req.GetEmail()) > 4*maxEmailLen {
		// Before normalising, which reads the whole string.
		return nil, "invalid", &fieldError{"email", fmt.Sprintf("required, at most %d bytes of UTF-8", maxEmailLen)}
	}
	email := identity.CanonicalEmail(req.GetEmail())
	switch {
	case email == "" || len(email) > maxEmailLen || !utf8.ValidString(email):
		return nil, "invalid", &fieldError{"email", fmt.Sprintf("required, at most %d bytes of UTF-8", maxEmailLen)}
	case req.GetPassword() == "" || len(req.GetPassword()) > maxPasswordLen:
		return nil, "invalid", &fieldError{"password", fmt.Sprintf("required, at most %d bytes", maxPasswordLen)}
	}
	clientID, err := s.clientID(req.GetClientId())
	if err != nil {
		return nil, "invalid", err
	}
	now := s.now()
	attempt, err := s.logins.Begin(ctx, email, s.cfg.Clients.Key(ctx))
	var limited *ratelimit.LimitedError
	switch {
	case errors.As(err, &limited):
		return nil, "rate_limited", err
	case err != nil:
		return nil, "unavailable", fmt.Errorf("%w: login limits: %w", ErrUnavailable, err)
	}
	acct, err := s.users.VerifyPassword(ctx, email, req.GetPassword())
	var overloaded *OverloadedError
	switch {
	case errors.Is(err, ErrBadCredentials):
		attempt.Failed()
		return nil, "bad_credentials", err
	case errors.As(err, &overloaded):
		attempt.Abandon(ctx)
		return nil, "overloaded", err
	case ctx.Err() != nil:
		// The caller left (cancelled, or its deadline passed): its own
		// doing, not a failure of ours. It still counts against its
		// limits, since the User service may have hashed for it.
		attempt.Failed()
		return nil, "canceled", ctx.Err()
	case err != nil:
		attempt.Abandon(ctx)
		return nil, "unavailable", err // fail logs why
	}
	if err := attempt.Succeeded(ctx); err != nil {
		s.log.WarnContext(ctx, "login: remembering the address of a success", "error", err)
	}
	access, refresh, err := s.startFamily(ctx, acct, clientID, now)
	if err != nil {
		return nil, "error", err
	}
	s.log.InfoContext(ctx, "login", "user_id", acct.ID)
	return &authv1.LoginResponse{
		AccessToken: access.Token, RefreshToken: refresh, TokenType: "Bearer",
		ExpiresIn: int64(s.cfg.AccessTTL / time.Second),
	}, "success", nil
}

// clientID is the client a Login names, checked against the configured
// clients; "" is the first of them.
func (s *Service) clientID(requested string) (string, error) {
	if len(s.cfg.ClientIDs) == 0 {
		return "", errors.New("no client ids configured")
	}
	if requested == "" {
		return s.cfg.ClientIDs[0], nil
	}
	if slices.Contains(s.cfg.ClientIDs, requested) {
		return requested, nil
	}
	return "", &fieldError{"client_id", "not a client of this server (CLIENT_IDS); leave it empty for the default"}
}

func (s *Service) startFamily(ctx context.Context, acct Account, clientID string, now time.Time) (AccessToken, string, error) {
	familyID, err := uuid.NewV7()
	if err != nil {
		return AccessToken{}, "", err
	}
	token, hash, err := newRefreshToken()
	if err != nil {
		return AccessToken{}, "", err
	}
	now = now.UTC().Truncate(time.Microsecond)
	fam := Family{
		ID: familyID.String(), UserID: acct.ID, ClientID: clientID, Roles: acct.Roles, SessionVersion: acct.SessionVersion,
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL),
	}
	first := RefreshToken{Hash: hash, FamilyID: fam.ID, IssuedAt: now, IdleExpiresAt: now.Add(s.cfg.RefreshIdle)}
	if err := s.store.CreateFamily(ctx, fam, first); err != nil {
		return AccessToken{}, "", err
	}
	access, err := s.issue(acct, clientID)
	if err != nil {
		return AccessToken{}, "", err
	}
	s.metrics.issued.WithLabelValues("refresh").Inc()
	return access, token, nil
}

func (s *Service) issue(acct Account, clientID string) (AccessToken, error) {
	tok, err := s.issuer.Issue(acct, clientID, s.cfg.Audience, s.cfg.AccessTTL)
	if err != nil {
		return AccessToken{}, err
	}
	s.metrics.issued.WithLabelValues("access").Inc()
	return tok, nil
}

func (s *Service) RefreshToken(ctx context.Context, req *authv1.RefreshTokenRequest) (*authv1.RefreshTokenResponse, error) {
	resp, fam, result, err := s.refresh(ctx, req.GetRefreshToken())
	s.metrics.refreshes.WithLabelValues(result).Inc()
	if err != nil {
		// Never the token: its family and user say which session it was.
		s.sampled.Log(ctx, s.log, slog.LevelInfo, "refresh "+result, "refresh refused", "result", result, "family_id", fam.ID, "user_id", fam.UserID)
		return nil, s.fail(ctx, err)
	}
	return resp, nil
}

// refresh rotates a refresh token and issues an access token for the user
// as the User service reports it now. The User service is asked before the
// rotation, so when it cannot answer the client keeps its refresh token
// (Unavailable, retry); when the user was deleted or its sessions ended
// since login, the family is revoked and nothing is issued.
func (s *Service) refresh(ctx context.Context, old string) (*authv1.RefreshTokenResponse, Family, string, error) {
	if old == "" || len(old) > maxRefreshTokenLen {
		return nil, Family{}, "invalid", &fieldError{"refresh_token", "required, as returned by Login or RefreshToken"}
	}
	oldHash := hashRefreshToken(old)
	current, fam, err := s.store.Lookup(ctx, oldHash)
	switch {
	case errors.Is(err, ErrTokenNotFound):
		return nil, Family{}, "unknown", err
	case err != nil:
		return nil, Family{}, "error", err
	}
	if !slices.Contains(s.cfg.ClientIDs, fam.ClientID) {
		// The client was removed from CLIENT_IDS: its sessions end with it
		// (and resume if it is added back).
		return nil, fam, "client_removed", fmt.Errorf("%w: client %q is not in CLIENT_IDS", ErrSessionEnded, fam.ClientID)
	}
	// Only a token that may still rotate is worth a question to the User
	// service; reuse, revocation and expiry are decided by Rotate alone, so
	// they are answered as such even while the User service is down (an
	// expired token is not "retry later").
	var acct Account
	now := s.now().UTC().Truncate(time.Microsecond)
	if current.RotatedAt.IsZero() && fam.RevokedAt.IsZero() && now.Before(fam.ExpiresAt) && now.Before(current.IdleExpiresAt) {
		if acct, err = s.currentAccount(ctx, fam); err != nil {
			if ctx.Err() != nil {
				return nil, fam, "canceled", err
			}
			if errors.Is(err, ErrUnavailable) {
				// Nothing changed: the client retries with the same token.
				return nil, fam, "unavailable", fmt.Errorf("refresh of family %s kept: %w", fam.ID, err)
			}
			if errors.Is(err, ErrUserNotFound) {
				return nil, fam, "user_gone", fmt.Errorf("%w: %w", ErrSessionEnded, err)
			}
			if errors.Is(err, ErrSessionEnded) {
				return nil, fam, "session_ended", err
			}
			return nil, fam, "error", err
		}
	}

	token, hash, err := newRefreshToken()
	if err != nil {
		return nil, fam, "error", err
	}
	next := RefreshToken{Hash: hash, IssuedAt: now, IdleExpiresAt: now.Add(s.cfg.RefreshIdle)}
	rotated, err := s.store.Rotate(ctx, oldHash, next, now, s.cfg.ReuseGrace)
	switch {
	case errors.Is(err, ErrTokenReused):
		s.metrics.reuse.Inc()
		s.sampled.Log(ctx, s.log, slog.LevelWarn, "reuse", "refresh token reuse detected; family revoked", "family_id", fam.ID, "user_id", fam.UserID)
		return nil, fam, "reused", err
	case errors.Is(err, ErrTokenJustRotated):
		return nil, fam, "concurrent", err
	case errors.Is(err, ErrTokenRevoked):
		return nil, fam, "revoked", err
	case errors.Is(err, ErrTokenExpired):
		return nil, fam, "expired", err
	case errors.Is(err, ErrTokenNotFound):
		return nil, fam, "unknown", err
	case err != nil:
		return nil, fam, "error", err
	}
	if acct.ID != rotated.UserID {
		// Rotate accepted a token Lookup had seen rotated or revoked: the
		// store broke its own rules. Issue nothing.
		return nil, fam, "error", fmt.Errorf("refresh: family %s rotated without a current account", rotated.ID)
	}
	access, err := s.issue(acct, fam.ClientID)
	if err != nil {
		return nil, fam, "error", err
	}
	s.metrics.issued.WithLabelValues("refresh").Inc()
	return &authv1.RefreshTokenResponse{
		AccessToken: access.Token, RefreshToken: token, TokenType: "Bearer",
		ExpiresIn: int64(s.cfg.AccessTTL / time.Second),
	}, fam, "success", nil
}

// currentAccount asks the User service for the family's user as it is now.
// A deleted user (ErrUserNotFound) or a session version that moved on since
// login (ErrSessionEnded) ends the family, and every other family of the
// user that the same change ended, here and now.
func (s *Service) currentAccount(ctx context.Context, fam Family) (Account, error) {
	acct, err := s.users.SessionState(ctx, fam.UserID)
	switch {
	case errors.Is(err, ErrUserNotFound):
		s.endFamilies(ctx, fam.UserID, math.MaxInt64, "user deleted")
		return Account{}, err
	case err != nil:
		return Account{}, err
	case acct.SessionVersion != fam.SessionVersion:
		s.endFamilies(ctx, fam.UserID, acct.SessionVersion, "sessions ended")
		return Account{}, fmt.Errorf("%w: family of session version %d, user at %d", ErrSessionEnded, fam.SessionVersion, acct.SessionVersion)
	}
	return acct, nil
}

// endFamilies revokes the user's families below belowVersion. It is
// bookkeeping: the version comparison already refuses them, so a failure
// here is logged and the call goes on.
func (s *Service) endFamilies(ctx context.Context, userID string, belowVersion int64, why string) int64 {
	n, err := s.store.RevokeUserFamilies(ctx, userID, belowVersion, s.now().UTC())
	if err != nil {
		s.log.WarnContext(ctx, "revoking ended refresh families", "user_id", userID, "why", why, "error", err)
		return 0
	}
	if n > 0 {
		s.log.InfoContext(ctx, "refresh families revoked", "user_id", userID, "why", why, "families", n)
	}
	return n
}

// RevokeAllSessions ends every session of a user: the User service moves
// the user's session version on (so it refuses every earlier access token
// at once, and every refresh of an earlier family fails), then this
// service revokes the user's families. The policy admits the user itself
// or an admin.
func (s *Service) RevokeAllSessions(ctx context.Context, req *authv1.RevokeAllSessionsRequest) (*authv1.RevokeAllSessionsResponse, error) {
	id := req.GetUserId()
	if !identity.IsUserID(id) {
		return nil, s.fail(ctx, &fieldError{"user_id", "must be a user id (UUID)"})
	}
	version, err := s.users.EndSessions(ctx, id)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	n := s.endFamilies(ctx, id, version, "revoke all sessions")
	caller, _ := authz.Caller(ctx)
	s.log.InfoContext(ctx, "all sessions revoked", "user_id", id, "by", caller.ID, "families", n)
	return &authv1.RevokeAllSessionsResponse{}, nil
}

// ResolveCaller is the authz.Resolver of this service: the caller as the
// User service reports it now (roles, and whether the token's session has
// ended), since this service keeps no users of its own.
func (s *Service) ResolveCaller(ctx context.Context, c *authn.Claims) (authz.Principal, error) {
	return identity.Resolve(ctx, c, func(ctx context.Context, id string) (identity.Caller, error) {
		acct, err := s.users.SessionState(ctx, id)
		switch {
		case errors.Is(err, ErrUserNotFound):
			return identity.Caller{}, fmt.Errorf("%w: the token's user no longer exists", authz.ErrSessionEnded)
		case errors.Is(err, ErrUnavailable):
			return identity.Caller{}, fmt.Errorf("%w: %w", authz.ErrUnavailable, err)
		case err != nil:
			return identity.Caller{}, err
		}
		return identity.Caller{ID: acct.ID, Roles: acct.Roles, SessionVersion: acct.SessionVersion}, nil
	})
}

func (s *Service) ValidateToken(ctx context.Context, req *authv1.ValidateTokenRequest) (*authv1.ValidateTokenResponse, error) {
	if req.GetAccessToken() == "" {
		return nil, s.fail(ctx, &fieldError{"access_token", "required"})
	}
	claims, err := s.verifier.Verify(ctx, req.GetAccessToken())
	if err != nil {
		if errors.Is(err, authn.ErrKeysUnavailable) {
			return nil, s.fail(ctx, fmt.Errorf("%w: %w", ErrUnavailable, err))
		}
		return nil, s.fail(ctx, fmt.Errorf("%w: %w", ErrInvalidToken, err))
	}
	return &authv1.ValidateTokenResponse{
		Subject:    claims.Subject,
		Roles:      claims.Roles,
		ExpireTime: timestamppb.New(claims.ExpiresAt),
		ClientId:   claims.ClientID,
	}, nil
}

func (s *Service) RevokeToken(ctx context.Context, req *authv1.RevokeTokenRequest) (*authv1.RevokeTokenResponse, error) {
	tok := req.GetRefreshToken()
	if tok == "" || len(tok) > maxRefreshTokenLen {
		return nil, s.fail(ctx, &fieldError{"refresh_token", "required, as returned by Login or RefreshToken"})
	}
	err := s.store.RevokeFamily(ctx, hashRefreshToken(tok), s.now().UTC())
	// RFC 7009: an unknown or already revoked token is not an error, so
	// logout is idempotent and reveals nothing.
	if err != nil && !errors.Is(err, ErrTokenNotFound) {
		return nil, s.fail(ctx, err)
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
