package user

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authn"
)

// Service implements user.v1.UserService. Authentication has already
// happened in the interceptor; Service decides authorization: a user reads
// and changes itself, admin does everything, service may VerifyPassword.
type Service struct {
	userv1.UnimplementedUserServiceServer

	store       Store
	hasher      PasswordHasher
	allowSignup bool
	status      func() healthpb.HealthCheckResponse_ServingStatus
	log         *slog.Logger
	now         func() time.Time
}

// Options configure a Service.
type Options struct {
	AllowSignup bool
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
	return &Service{store: store, hasher: hasher, allowSignup: o.AllowSignup, status: o.Status, log: o.Logger, now: time.Now}
}

// PublicMethods are the methods callable without a token. CreateUser is
// public only while sign-up is enabled.
func PublicMethods(allowSignup bool) []string {
	m := []string{userv1.UserService_HealthCheck_FullMethodName}
	if allowSignup {
		m = append(m, userv1.UserService_CreateUser_FullMethodName)
	}
	return m
}

func (s *Service) CreateUser(ctx context.Context, req *userv1.CreateUserRequest) (*userv1.CreateUserResponse, error) {
	claims, authed := authn.ClaimsFromContext(ctx)
	isAdmin := authed && claims.HasRole(RoleAdmin)
	if !isAdmin && !s.allowSignup {
		if !authed {
			return nil, errorStatus(ErrUnauthenticated)
		}
		return nil, errorStatus(fmt.Errorf("%w: sign-up is disabled; only admin creates users", ErrPermissionDenied))
	}
	v := &ValidationError{}
	email := normalizeEmail(v, "email", req.GetEmail())
	checkPassword(v, "password", req.GetPassword())
	checkDisplayName(v, "display_name", req.GetDisplayName())
	roles := checkRoles(v, "roles", req.GetRoles())
	if err := v.orNil(); err != nil {
		return nil, errorStatus(err)
	}
	if len(roles) > 0 && !isAdmin {
		return nil, errorStatus(fmt.Errorf("%w: only admin assigns roles", ErrPermissionDenied))
	}
	u, err := s.create(ctx, email, req.GetPassword(), req.GetDisplayName(), roles)
	if err != nil {
		return nil, errorStatus(err)
	}
	s.log.InfoContext(ctx, "user created", "user_id", u.ID, "by_admin", isAdmin)
	return &userv1.CreateUserResponse{User: toProto(u)}, nil
}

func (s *Service) create(ctx context.Context, email, password, displayName string, roles []string) (User, error) {
	hash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return User{}, fmt.Errorf("hash password: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return User{}, fmt.Errorf("new id: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	u := User{ID: id.String(), Email: email, DisplayName: displayName, Roles: roles, PasswordHash: hash, CreateTime: now, UpdateTime: now}
	if err := s.store.Create(ctx, u); err != nil {
		return User{}, err
	}
	return u, nil
}

func (s *Service) GetUser(ctx context.Context, req *userv1.GetUserRequest) (*userv1.GetUserResponse, error) {
	if err := checkTarget(ctx, req.GetId()); err != nil {
		return nil, errorStatus(err)
	}
	u, err := s.store.Get(ctx, req.GetId())
	if err != nil {
		return nil, errorStatus(err)
	}
	return &userv1.GetUserResponse{User: toProto(u)}, nil
}

func (s *Service) ListUsers(ctx context.Context, req *userv1.ListUsersRequest) (*userv1.ListUsersResponse, error) {
	if err := authorizeRole(ctx, RoleAdmin); err != nil {
		return nil, errorStatus(err)
	}
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
		return nil, errorStatus(err)
	}
	// One extra row tells whether another page exists, so the last page
	// never carries a token that leads to an empty page.
	users, err := s.store.List(ctx, after, size+1)
	if err != nil {
		return nil, errorStatus(err)
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

func (s *Service) UpdateUser(ctx context.Context, req *userv1.UpdateUserRequest) (*userv1.UpdateUserResponse, error) {
	if err := checkTarget(ctx, req.GetId()); err != nil {
		return nil, errorStatus(err)
	}
	v := &ValidationError{}
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
	var newEmail, newPassword string
	var newRoles []string
	for _, p := range paths {
		switch p {
		case "email":
			newEmail = normalizeEmail(v, "email", req.GetEmail())
		case "display_name":
			checkDisplayName(v, "display_name", req.GetDisplayName())
		case "password":
			checkPassword(v, "password", req.GetPassword())
			newPassword = req.GetPassword()
		case "roles":
			newRoles = checkRoles(v, "roles", req.GetRoles())
		default:
			v.add("update_mask", fmt.Sprintf("unknown path %q; allowed: email, display_name, password, roles", truncate(p, 32)))
		}
	}
	if err := v.orNil(); err != nil {
		return nil, errorStatus(err)
	}
	if slices.Contains(paths, "roles") {
		if err := authorizeRole(ctx, RoleAdmin); err != nil {
			return nil, errorStatus(fmt.Errorf("%w: only admin changes roles", err))
		}
	}

	u, err := s.store.Get(ctx, req.GetId())
	if err != nil {
		return nil, errorStatus(err)
	}
	for _, p := range paths {
		switch p {
		case "email":
			u.Email = newEmail
		case "display_name":
			u.DisplayName = req.GetDisplayName()
		case "password":
			if u.PasswordHash, err = s.hasher.Hash(ctx, newPassword); err != nil {
				return nil, errorStatus(fmt.Errorf("hash password: %w", err))
			}
		case "roles":
			u.Roles = newRoles
		}
	}
	u.UpdateTime = s.now().UTC().Truncate(time.Microsecond)
	if err := s.store.Update(ctx, u); err != nil {
		return nil, errorStatus(err)
	}
	s.log.InfoContext(ctx, "user updated", "user_id", u.ID, "fields", strings.Join(paths, ","))
	return &userv1.UpdateUserResponse{User: toProto(u)}, nil
}

func (s *Service) DeleteUser(ctx context.Context, req *userv1.DeleteUserRequest) (*userv1.DeleteUserResponse, error) {
	if err := checkTarget(ctx, req.GetId()); err != nil {
		return nil, errorStatus(err)
	}
	if err := s.store.Delete(ctx, req.GetId()); err != nil {
		return nil, errorStatus(err)
	}
	s.log.InfoContext(ctx, "user deleted", "user_id", req.GetId())
	return &userv1.DeleteUserResponse{}, nil
}

// VerifyPassword answers the Auth service's login question. Unknown email,
// wrong password and over-long password all give the same error, and the
// unknown-email path runs a full argon2id check against a dummy hash so
// timing does not reveal which accounts exist.
func (s *Service) VerifyPassword(ctx context.Context, req *userv1.VerifyPasswordRequest) (*userv1.VerifyPasswordResponse, error) {
	if err := authorizeRole(ctx, RoleService); err != nil {
		return nil, errorStatus(err)
	}
	pw := req.GetPassword()
	if len(pw) > 4*MaxPasswordLen {
		return nil, errorStatus(ErrBadCredentials)
	}
	u, err := s.store.GetByEmail(ctx, strings.ToLower(strings.TrimSpace(req.GetEmail())))
	switch {
	case errors.Is(err, ErrNotFound):
		u = User{}
	case err != nil:
		return nil, errorStatus(err)
	}
	ok, err := s.hasher.Verify(ctx, pw, u.PasswordHash)
	if err != nil {
		return nil, errorStatus(err)
	}
	if !ok || u.ID == "" {
		return nil, errorStatus(ErrBadCredentials)
	}
	return &userv1.VerifyPasswordResponse{User: toProto(u)}, nil
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
	checkPassword(v, "BOOTSTRAP_ADMIN_PASSWORD", password)
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
	u, err := s.create(ctx, email, password, "Administrator", []string{RoleAdmin})
	if errors.Is(err, ErrEmailTaken) {
		return nil // another replica created it first
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "bootstrap admin created", "user_id", u.ID)
	return nil
}

// checkTarget validates the id of the user a call acts on and that the
// caller may act on it (itself, or anyone for admin). The id is checked
// first so a malformed one is InvalidArgument whoever asks.
func checkTarget(ctx context.Context, id string) error {
	v := &ValidationError{}
	checkID(v, "id", id)
	if err := v.orNil(); err != nil {
		return err
	}
	return authorizeSelfOrAdmin(ctx, id)
}

func authorizeSelfOrAdmin(ctx context.Context, id string) error {
	claims, ok := authn.ClaimsFromContext(ctx)
	if !ok {
		return ErrUnauthenticated
	}
	if claims.Subject == id || claims.HasRole(RoleAdmin) {
		return nil
	}
	return ErrPermissionDenied
}

func authorizeRole(ctx context.Context, role string) error {
	claims, ok := authn.ClaimsFromContext(ctx)
	if !ok {
		return ErrUnauthenticated
	}
	if !claims.HasRole(role) {
		return fmt.Errorf("%w: requires role %s", ErrPermissionDenied, role)
	}
	return nil
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
	}
}
