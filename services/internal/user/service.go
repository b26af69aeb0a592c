package user

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/identity"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authz"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/ratelimit"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/telemetry"
)

// Service implements user.v1.UserService. Authentication (authn) and the
// method's access policy (authz, see Policy) have run before a handler:
// the handlers keep only the rules that depend on request fields, such as
// who may set roles or change an email.
type Service struct {
	userv1.UnimplementedUserServiceServer

	store        Store
	hasher       PasswordHasher
	signupHasher PasswordHasher
	allowSignup  bool
	changes      ratelimit.Attempts // failed ChangePassword attempts
	verifies     ratelimit.Attempts // failed VerifyPassword checks, per account
	clients      *ratelimit.Clients
	signups      ratelimit.Rule // sign-ups per client address
	limits       ratelimit.Store
	status       func() healthpb.HealthCheckResponse_ServingStatus
	log          *slog.Logger
	sampled      *telemetry.Sampler // lines a client can repeat at will
	now          func() time.Time
}

// Options configure a Service.
type Options struct {
	AllowSignup bool
	// SignupHasher hashes the passwords of anonymous sign-ups, with slots
	// of its own, so a sign-up flood cannot take the hashing that logins
	// and password changes need; nil shares the main hasher.
	SignupHasher PasswordHasher
	// Limits holds the buckets of the two limits below; nil limits
	// nothing.
	Limits ratelimit.Store
	// Clients tells client addresses apart (trusted proxies); nil: the
	// TCP peer.
	Clients *ratelimit.Clients
	// PasswordChanges limits failed ChangePassword attempts (keys: user
	// id, client address); its Store is Limits.
	PasswordChanges ratelimit.Attempts
	// SignupsPerAddress limits anonymous sign-ups per client address.
	SignupsPerAddress ratelimit.Rule
	// PasswordVerifications limits failed VerifyPassword checks per
	// account (its PerAccount rule; the caller is always the Auth
	// service, so addresses say nothing). It is a backstop behind the Auth
	// service's login limits, set looser than those so that it never
	// trips on traffic they let through: it bounds guessing by anyone who
	// holds the service's credentials. Its Store is Limits.
	PasswordVerifications ratelimit.Attempts
	// Status reports the server's readiness for HealthCheck.
	Status func() healthpb.HealthCheckResponse_ServingStatus
	Logger *slog.Logger
}

// NewService returns the gRPC handlers over store and hasher.
func NewService(store Store, hasher PasswordHasher, o Options) *Service {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Status == nil {
		o.Status = func() healthpb.HealthCheckResponse_ServingStatus { return healthpb.HealthCheckResponse_SERVING }
	}
	if o.SignupHasher == nil {
		o.SignupHasher = hasher
	}
	if o.Limits == nil {
		o.Limits = ratelimit.NewMemory(1)
		o.PasswordChanges, o.SignupsPerAddress, o.PasswordVerifications = ratelimit.Attempts{}, ratelimit.Rule{}, ratelimit.Attempts{}
	}
	o.PasswordChanges.Store, o.PasswordChanges.Scope = o.Limits, "password-change"
	o.PasswordVerifications.Store, o.PasswordVerifications.Scope = o.Limits, "verify-password"
	s := &Service{
		store: store, hasher: hasher, signupHasher: o.SignupHasher, allowSignup: o.AllowSignup,
		changes: o.PasswordChanges, verifies: o.PasswordVerifications, signups: o.SignupsPerAddress, limits: o.Limits, clients: o.Clients,
		status: o.Status, log: o.Logger, now: time.Now,
		sampled: telemetry.NewSampler(telemetry.SamplePerKey, telemetry.SampleTotal),
	}
	s.changes.Now = func() time.Time { return s.now() }
	s.verifies.Now = s.changes.Now
	return s
}

func (s *Service) CreateUser(ctx context.Context, req *userv1.CreateUserRequest) (*userv1.CreateUserResponse, error) {
	// Public while sign-up is on, admin-only otherwise (Policy); a token,
	// if sent, must still stand for a live session.
	caller, err := authz.Caller(ctx)
	anonymous := errors.Is(err, authz.ErrAnonymous)
	if err != nil && !anonymous {
		return nil, s.fail(ctx, err)
	}
	isAdmin := !anonymous && caller.HasRole(RoleAdmin)
	if len(req.GetRoles()) > 0 && !isAdmin {
		return nil, s.fail(ctx, fmt.Errorf("%w: only admin assigns roles", ErrPermissionDenied))
	}
	hasher := s.hasher
	if anonymous {
		// A sign-up: limited per client address before anything else,
		// since the strength estimate and the hash are what a flood would
		// make us pay for; and hashed on a budget of its own.
		ok, retry, err := s.limits.Take(ctx, ratelimit.Key("signup", s.clients.Key(ctx)), s.signups, s.now())
		if err != nil {
			return nil, s.fail(ctx, fmt.Errorf("%w: sign-up limit: %w", ErrUnavailable, err))
		}
		if !ok {
			return nil, s.fail(ctx, &ratelimit.LimitedError{Limit: "client address (sign-ups)", RetryAfter: retry})
		}
		hasher = s.signupHasher
	}
	v := &ValidationError{}
	email := normalizeEmail(v, "email", req.GetEmail())
	name := checkDisplayName(v, "display_name", req.GetDisplayName())
	checkPassword(v, "password", req.GetPassword(), req.GetEmail(), req.GetDisplayName())
	roles := checkRoles(v, "roles", req.GetRoles())
	if err := v.orNil(); err != nil {
		return nil, s.fail(ctx, err)
	}
	u, err := s.create(ctx, hasher, email, req.GetPassword(), name, roles)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	s.log.InfoContext(ctx, "user created", "user_id", u.ID, "by_admin", isAdmin)
	return &userv1.CreateUserResponse{User: toProto(u)}, nil
}

func (s *Service) create(ctx context.Context, hasher PasswordHasher, email, password, displayName string, roles []string) (User, error) {
	hash, err := hasher.Hash(ctx, password)
	if err != nil {
		return User{}, fmt.Errorf("hash password: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return User{}, fmt.Errorf("new id: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	u := User{ID: id.String(), Email: email, DisplayName: displayName, Roles: roles, PasswordHash: hash, CreateTime: now, UpdateTime: now, Version: 1}
	if err := s.store.Create(ctx, u); err != nil {
		return User{}, err
	}
	return u, nil
}

func (s *Service) GetUser(ctx context.Context, req *userv1.GetUserRequest) (*userv1.GetUserResponse, error) {
	if err := checkTarget(req.GetId()); err != nil {
		return nil, s.fail(ctx, err)
	}
	// Reading oneself, the most common call: the row ResolveCaller read a
	// moment ago to judge the caller is the answer.
	if caller, err := authz.Caller(ctx); err == nil && caller.ID == req.GetId() {
		if u, ok := caller.Account.(User); ok {
			return &userv1.GetUserResponse{User: toProto(u)}, nil
		}
	}
	u, err := s.store.Get(ctx, req.GetId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &userv1.GetUserResponse{User: toProto(u)}, nil
}

func (s *Service) ListUsers(ctx context.Context, req *userv1.ListUsersRequest) (*userv1.ListUsersResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, badRequest("page_size", "must not be negative")
	case size == 0:
		size = DefaultPageSize
	case size > MaxPageSize:
		// AIP-158: larger requests are coerced to the maximum.
		size = MaxPageSize
	}
	after, err := decodePageToken(req.GetPageToken())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	// One extra row tells whether another page exists, so the last page
	// never carries a token that leads to an empty page.
	users, err := s.store.List(ctx, after, size+1)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	resp := &userv1.ListUsersResponse{}
	if len(users) > size {
		users = users[:size]
		resp.NextPageToken = encodePageToken(users[size-1].ID)
	}
	for _, u := range users {
		resp.Users = append(resp.Users, toProto(u))
	}
	return resp, nil
}

// updatePaths are the update_mask paths UpdateUser knows.
var updatePaths = []string{"email", "display_name", "password", "roles"}

// UpdateUser writes the masked fields, and only those, in one atomic store
// change. Who may change what, beyond the method's self-or-admin policy:
//
//   - roles: admin only;
//   - email and password of another user: admin (a reset, which ends that
//     user's sessions);
//   - one's own email or password: nobody, here. A stolen access token
//     must not be enough to take an account over; ChangePassword asks for
//     the current password, and an admin changes emails.
func (s *Service) UpdateUser(ctx context.Context, req *userv1.UpdateUserRequest) (*userv1.UpdateUserResponse, error) {
	id := req.GetId()
	if err := checkTarget(id); err != nil {
		return nil, s.fail(ctx, err)
	}
	caller, err := authz.Caller(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	self, isAdmin := caller.ID == id, caller.HasRole(RoleAdmin)

	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		// Without a mask, every non-empty scalar field is an update;
		// roles need an explicit mask because an empty list is meaningful.
		for field, val := range map[string]string{"email": req.GetEmail(), "display_name": req.GetDisplayName(), "password": req.GetPassword()} {
			if val != "" {
				paths = append(paths, field)
			}
		}
		slices.Sort(paths)
	}
	if len(paths) == 0 {
		return nil, badRequest("update_mask", "nothing to update: name fields in update_mask or set them")
	}
	if len(paths) > len(updatePaths) {
		// Before looking at any path: each one costs a comparison and,
		// when wrong, a violation.
		return nil, badRequest("update_mask", fmt.Sprintf("at most %d paths (%s), got %d", len(updatePaths), strings.Join(updatePaths, ", "), len(paths)))
	}
	v := &ValidationError{}
	seen := map[string]bool{}
	for _, p := range paths {
		switch {
		case !slices.Contains(updatePaths, p):
			v.add("update_mask", fmt.Sprintf("unknown path %q; allowed: %s", truncate(p, 32), strings.Join(updatePaths, ", ")))
		case seen[p]:
			v.add("update_mask", fmt.Sprintf("path %q named twice", p))
		}
		seen[p] = true
	}
	if err := v.orNil(); err != nil {
		return nil, s.fail(ctx, err)
	}
	// Permission before validation: a caller who may not set a field
	// learns that, not what would be wrong with its value.
	switch {
	case seen["roles"] && !isAdmin:
		return nil, s.fail(ctx, fmt.Errorf("%w: only admin changes roles", ErrPermissionDenied))
	case seen["password"] && self:
		return nil, s.fail(ctx, fmt.Errorf("%w: change your own password with ChangePassword, which needs the current one", ErrPermissionDenied))
	case seen["email"] && self:
		return nil, s.fail(ctx, fmt.Errorf("%w: your own email is changed by another admin, and your password with ChangePassword", ErrPermissionDenied))
	}

	ch := Change{UpdateTime: s.now().UTC().Truncate(time.Microsecond)}
	if ch.IfVersion, err = parseEtag(req.GetEtag()); err != nil {
		return nil, s.fail(ctx, err)
	}
	if seen["email"] {
		email := normalizeEmail(v, "email", req.GetEmail())
		ch.Email, ch.EndSessions = &email, true
	}
	if seen["display_name"] {
		name := checkDisplayName(v, "display_name", req.GetDisplayName())
		ch.DisplayName = &name
	}
	if seen["password"] {
		// A reset (admins only): judged against what is known of the
		// account, its stored email and name as well as new ones.
		target, err := s.store.Get(ctx, id)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		checkPassword(v, "password", req.GetPassword(), target.Email, target.DisplayName, req.GetEmail(), req.GetDisplayName())
	}
	if seen["roles"] {
		roles := checkRoles(v, "roles", req.GetRoles())
		ch.Roles = &roles
	}
	if err := v.orNil(); err != nil {
		return nil, s.fail(ctx, err)
	}
	if seen["password"] {
		hash, err := s.hasher.Hash(ctx, req.GetPassword())
		if err != nil {
			return nil, s.fail(ctx, fmt.Errorf("hash password: %w", err))
		}
		ch.PasswordHash, ch.EndSessions = &hash, true
	}
	u, err := s.store.Update(ctx, id, ch)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	s.log.InfoContext(ctx, "user updated", "user_id", u.ID, "by", caller.ID, "fields", strings.Join(paths, ","), "sessions_ended", ch.EndSessions)
	return &userv1.UpdateUserResponse{User: toProto(u)}, nil
}

func (s *Service) DeleteUser(ctx context.Context, req *userv1.DeleteUserRequest) (*userv1.DeleteUserResponse, error) {
	if err := checkTarget(req.GetId()); err != nil {
		return nil, s.fail(ctx, err)
	}
	ifVersion, err := parseEtag(req.GetEtag())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.store.Delete(ctx, req.GetId(), ifVersion); err != nil {
		return nil, s.fail(ctx, err)
	}
	s.log.InfoContext(ctx, "user deleted", "user_id", req.GetId())
	return &userv1.DeleteUserResponse{}, nil
}

// ChangePassword is the self-service password change: the policy makes it
// self-only, the current password proves the caller is the owner and not
// just the holder of a token, and the change ends every session (the
// caller's too). At most two hashes: the check and the new hash.
func (s *Service) ChangePassword(ctx context.Context, req *userv1.ChangePasswordRequest) (*userv1.ChangePasswordResponse, error) {
	id := req.GetId()
	if err := checkTarget(id); err != nil {
		return nil, s.fail(ctx, err)
	}
	// Limited like Login: by (user, address), by address, and by user from
	// addresses without a recent success; only failures stay counted. The
	// limit comes first, since checking the request (the new password's
	// strength) costs too.
	attempt, err := s.changes.Begin(ctx, id, s.clients.Key(ctx))
	var limited *ratelimit.LimitedError
	switch {
	case errors.As(err, &limited):
		return nil, s.fail(ctx, err)
	case err != nil:
		return nil, s.fail(ctx, fmt.Errorf("%w: password change limits: %w", ErrUnavailable, err))
	}
	u, err := s.store.Get(ctx, id)
	if err != nil {
		attempt.Abandon(ctx)
		return nil, s.fail(ctx, err)
	}
	v := &ValidationError{}
	if cur := req.GetCurrentPassword(); cur == "" || len(cur) > 4*MaxPasswordLen {
		v.add("current_password", "required: the password in use now")
	}
	checkPassword(v, "new_password", req.GetNewPassword(), u.Email, u.DisplayName)
	if err := v.orNil(); err != nil {
		attempt.Failed() // it cost the check; counted like a wrong guess
		return nil, s.fail(ctx, err)
	}
	ok, err := s.hasher.Verify(ctx, req.GetCurrentPassword(), u.PasswordHash)
	if err != nil {
		attempt.Abandon(ctx)
		return nil, s.fail(ctx, err)
	}
	if !ok {
		attempt.Failed()
		s.sampled.Log(ctx, s.log, slog.LevelInfo, "wrong current password", "password change refused: wrong current password", "user_id", id)
		return nil, s.fail(ctx, ErrWrongPassword)
	}
	if err := attempt.Succeeded(ctx); err != nil {
		s.log.WarnContext(ctx, "password change: remembering the address of a success", "error", err)
	}
	hash, err := s.hasher.Hash(ctx, req.GetNewPassword())
	if err != nil {
		return nil, s.fail(ctx, fmt.Errorf("hash password: %w", err))
	}
	// Conditional on the version the current password was checked
	// against: an admin's reset in between wins, and this call is Aborted.
	_, err = s.store.Update(ctx, id, Change{
		PasswordHash: &hash, EndSessions: true, IfVersion: u.Version,
		UpdateTime: s.now().UTC().Truncate(time.Microsecond),
	})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	s.log.InfoContext(ctx, "password changed; sessions ended", "user_id", id)
	return &userv1.ChangePasswordResponse{}, nil
}

// VerifyPassword answers the Auth service's login question. Unknown email,
// wrong password and over-long password all give the same error, and the
// unknown-email path runs a full argon2id check against a dummy hash so
// timing does not reveal which accounts exist.
func (s *Service) VerifyPassword(ctx context.Context, req *userv1.VerifyPasswordRequest) (*userv1.VerifyPasswordResponse, error) {
	pw := req.GetPassword()
	if len(pw) > 4*MaxPasswordLen {
		return nil, s.fail(ctx, ErrBadCredentials)
	}
	// A login flood past the hashing capacity is refused before it costs
	// a limit's bookkeeping and a database read.
	if err := s.hasher.Admit(); err != nil {
		return nil, s.fail(ctx, err)
	}
	email := identity.CanonicalEmail(req.GetEmail())
	attempt, err := s.verifies.Begin(ctx, email, "")
	var limited *ratelimit.LimitedError
	switch {
	case errors.As(err, &limited):
		return nil, s.fail(ctx, err)
	case err != nil:
		return nil, s.fail(ctx, fmt.Errorf("%w: password verification limits: %w", ErrUnavailable, err))
	}
	u, err := s.store.GetByEmail(ctx, email)
	switch {
	case errors.Is(err, ErrNotFound):
		u = User{}
	case err != nil:
		attempt.Abandon(ctx)
		return nil, s.fail(ctx, err)
	}
	ok, err := s.hasher.Verify(ctx, pw, u.PasswordHash)
	if err != nil {
		attempt.Abandon(ctx)
		return nil, s.fail(ctx, err)
	}
	if !ok || u.ID == "" {
		attempt.Failed()
		return nil, s.fail(ctx, ErrBadCredentials)
	}
	if err := attempt.Succeeded(ctx); err != nil {
		s.log.WarnContext(ctx, "password verification: recording a success", "error", err)
	}
	return &userv1.VerifyPasswordResponse{User: toProto(u), SessionVersion: u.SessionVersion}, nil
}

// GetSessionState tells the Auth service, on every refresh, who the user
// is now: its roles, and whether the session has ended.
func (s *Service) GetSessionState(ctx context.Context, req *userv1.GetSessionStateRequest) (*userv1.GetSessionStateResponse, error) {
	if err := checkTarget(req.GetId()); err != nil {
		return nil, s.fail(ctx, err)
	}
	u, err := s.store.Get(ctx, req.GetId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &userv1.GetSessionStateResponse{User: toProto(u), SessionVersion: u.SessionVersion}, nil
}

// EndSessions ends every session of a user issued until now: the Auth
// service's RevokeAllSessions ("log out everywhere").
func (s *Service) EndSessions(ctx context.Context, req *userv1.EndSessionsRequest) (*userv1.EndSessionsResponse, error) {
	if err := checkTarget(req.GetId()); err != nil {
		return nil, s.fail(ctx, err)
	}
	v, err := s.store.EndSessions(ctx, req.GetId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	s.log.InfoContext(ctx, "sessions ended", "user_id", req.GetId(), "session_version", v)
	return &userv1.EndSessionsResponse{SessionVersion: v}, nil
}

func (s *Service) HealthCheck(context.Context, *emptypb.Empty) (*userv1.HealthCheckResponse, error) {
	st := userv1.HealthCheckResponse_SERVING_STATUS_NOT_SERVING
	if s.status() == healthpb.HealthCheckResponse_SERVING {
		st = userv1.HealthCheckResponse_SERVING_STATUS_SERVING
	}
	return &userv1.HealthCheckResponse{Status: st, Timestamp: timestamppb.New(s.now())}, nil
}

// EnsureAdmin creates the bootstrap admin if no user has that email, so a
// fresh install has someone who can manage users.
func (s *Service) EnsureAdmin(ctx context.Context, email, password string) error {
	v := &ValidationError{}
	email = normalizeEmail(v, "BOOTSTRAP_ADMIN_EMAIL", email)
	checkPassword(v, "BOOTSTRAP_ADMIN_PASSWORD", password, email)
	if err := v.orNil(); err != nil {
		return err
	}
	existing, err := s.store.GetByEmail(ctx, email)
	switch {
	case err == nil:
		if !existing.HasRole(RoleAdmin) {
			s.log.WarnContext(ctx, "bootstrap admin email belongs to a user without the admin role; leaving it unchanged", "user_id", existing.ID)
		}
		return nil
	case !errors.Is(err, ErrNotFound):
		return err
	}
	u, err := s.create(ctx, s.hasher, email, password, "Administrator", []string{RoleAdmin})
	if errors.Is(err, ErrEmailTaken) {
		return nil // another replica created it first
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "bootstrap admin created", "user_id", u.ID)
	return nil
}

// ResolveCaller is the authz.Resolver of this service: the User service is
// the authority on users, so every call is judged by the caller as it is
// now. A token of a deleted user, or one issued before the user's sessions
// ended, stands for nobody; admin rights are the roles held now, not the
// token's. The Auth service's own token is the service principal.
func (s *Service) ResolveCaller(ctx context.Context, c *authn.Claims) (authz.Principal, error) {
	return identity.Resolve(ctx, c, func(ctx context.Context, id string) (identity.Caller, error) {
		u, err := s.store.Get(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			return identity.Caller{}, fmt.Errorf("%w: the token's user no longer exists", authz.ErrSessionEnded)
		case errors.Is(err, ErrUnavailable):
			return identity.Caller{}, fmt.Errorf("%w: %w", authz.ErrUnavailable, err)
		case err != nil:
			return identity.Caller{}, err
		}
		// The row is the answer to a GetUser of oneself (see GetUser).
		return identity.Caller{ID: u.ID, Roles: u.Roles, SessionVersion: u.SessionVersion, Record: u}, nil
	})
}

// checkTarget validates the id of the user a call acts on. Whether the
// caller may act on it is the policy's question, answered before.
func checkTarget(id string) error {
	v := &ValidationError{}
	checkID(v, "id", id)
	return v.orNil()
}

// etag is the User.etag of u: its version, which every change moves on.
func etag(u User) string { return strconv.FormatInt(u.Version, 10) }

// parseEtag reads an etag from a request; "" means none (0). Only the
// spelling etag writes is accepted ("+7", "07" or " 7" are not), so an
// etag is compared as given and one version has one etag.
func parseEtag(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || strconv.FormatInt(v, 10) != s {
		return 0, &ValidationError{Violations: []FieldViolation{{"etag", "malformed: pass back the etag of a User as returned"}}}
	}
	return v, nil
}

func toProto(u User) *userv1.User {
	roles := u.Roles
	if roles == nil {
		roles = []string{}
	}
	return &userv1.User{
		Id:          u.ID,
		Email:       u.Email,
		DisplayName: u.DisplayName,
		Roles:       roles,
		CreateTime:  timestamppb.New(u.CreateTime),
		UpdateTime:  timestamppb.New(u.UpdateTime),
		Etag:        etag(u),
	}
}
