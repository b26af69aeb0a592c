package user

import (
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authz"
)

// Policy is the one declaration of who may call each method of the User
// service. The authz interceptor enforces it, the authn interceptor takes
// its public methods from it, and app tests walk every registered method
// against it (authztest.CheckPolicy), so a method added without an entry
// is refused and fails the build's tests.
//
// CreateUser is public only while sign-up is enabled.
func Policy(allowSignup bool) authz.Policy {
	create := authz.Admin
	if allowSignup {
		create = authz.Public
	}
	return authz.Policy{
		Methods: map[string]authz.Access{
			userv1.UserService_CreateUser_FullMethodName:      create,
			userv1.UserService_GetUser_FullMethodName:         authz.SelfOrAdmin,
			userv1.UserService_ListUsers_FullMethodName:       authz.Admin,
			userv1.UserService_UpdateUser_FullMethodName:      authz.SelfOrAdmin,
			userv1.UserService_DeleteUser_FullMethodName:      authz.SelfOrAdmin,
			userv1.UserService_ChangePassword_FullMethodName:  authz.Self,
			userv1.UserService_VerifyPassword_FullMethodName:  authz.Service,
			userv1.UserService_GetSessionState_FullMethodName: authz.Service,
			userv1.UserService_EndSessions_FullMethodName:     authz.Service,
			userv1.UserService_HealthCheck_FullMethodName:     authz.Anonymous,
		},
		PublicServices: authn.PublicInfrastructureServices(),
	}
}
