package inprocess

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/auth"
	"github.com/gatehouse-dev/gatehouse/services/internal/faultproxy"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/authz/authztest"
)

// The tests in this file replay, call for call, the account scenarios in
// which a token outlived the facts it stood for: a demoted or deleted
// admin, a changed password, a self-service takeover, a lost update.

// session is one login of one user.
type session struct {
	id      string // user id
	access  string
	refresh string
}

func (p *pair) login(email, pw string) session {
	p.t.Helper()
	r, err := p.auth.Login(context.Background(), &authv1.LoginRequest{Email: email, Password: pw})
	if err != nil {
		p.t.Fatalf("login %s: %v", email, err)
	}
	return session{id: subjectOf(p.t, r.GetAccessToken()), access: r.GetAccessToken(), refresh: r.GetRefreshToken()}
}

func (p *pair) admin() session { return p.login("admin@example.com", "root keeps the keys") }

// createUser creates a user as the admin session, with roles.
func (p *pair) createUser(as session, email, pw string, roles ...string) string {
	p.t.Helper()
	r, err := p.users.CreateUser(bearer(as.access), &userv1.CreateUserRequest{Email: email, Password: pw, DisplayName: "Test", Roles: roles})
	if err != nil {
		p.t.Fatalf("create %s: %v", email, err)
	}
	return r.GetUser().GetId()
}

func subjectOf(t *testing.T, tok string) string {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, c); err != nil {
		t.Fatal(err)
	}
	sub, _ := c["sub"].(string)
	return sub
}

func rolesOf(t *testing.T, tok string) []string {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, c); err != nil {
		t.Fatal(err)
	}
	var roles []string
	list, _ := c["roles"].([]any)
	for _, r := range list {
		s, _ := r.(string)
		roles = append(roles, s)
	}
	return roles
}

func mask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

// TestDemotedAdminLosesAdminAtOnce: an admin removes a second admin's
// role. The second admin's access token, which still says "admin", no
// longer lists users, and its next refresh carries no admin role.
func TestDemotedAdminLosesAdminAtOnce(t *testing.T) {
	p := startPair(t)
	root := p.admin()
	p.createUser(root, "second@example.com", "second admin pw", "admin")
	second := p.login("second@example.com", "second admin pw")
	if _, err := p.users.ListUsers(bearer(second.access), &userv1.ListUsersRequest{}); err != nil {
		t.Fatalf("second admin before demotion: %v", err)
	}

	if _, err := p.users.UpdateUser(bearer(root.access), &userv1.UpdateUserRequest{Id: second.id, UpdateMask: mask("roles")}); err != nil {
		t.Fatalf("demote: %v", err)
	}
	_, err := p.users.ListUsers(bearer(second.access), &userv1.ListUsersRequest{})
	wantCode(t, err, codes.PermissionDenied)

	r, err := p.auth.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{RefreshToken: second.refresh})
	if err != nil {
		t.Fatalf("refresh after demotion: %v", err)
	}
	if roles := rolesOf(t, r.GetAccessToken()); slices.Contains(roles, "admin") {
		t.Errorf("refreshed token of a demoted admin carries roles %v", roles)
	}
	_, err = p.users.ListUsers(bearer(r.GetAccessToken()), &userv1.ListUsersRequest{})
	wantCode(t, err, codes.PermissionDenied)
	// Still the same user: it reads itself.
	if _, err := p.users.GetUser(bearer(r.GetAccessToken()), &userv1.GetUserRequest{Id: second.id}); err != nil {
		t.Errorf("demoted admin reading itself: %v", err)
	}
}

// TestDeletedAdminTokensDie: an admin deletes another admin. The deleted
// account's refresh token is refused and its access token cannot create a
// new admin account.
func TestDeletedAdminTokensDie(t *testing.T) {
	p := startPair(t)
	root := p.admin()
	p.createUser(root, "gone@example.com", "gone admin pw", "admin")
	gone := p.login("gone@example.com", "gone admin pw")
	if _, err := p.users.DeleteUser(bearer(root.access), &userv1.DeleteUserRequest{Id: gone.id}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err := p.auth.Login(context.Background(), &authv1.LoginRequest{Email: "gone@example.com", Password: "gone admin pw"})
	wantCode(t, err, codes.Unauthenticated)
	_, err = p.auth.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{RefreshToken: gone.refresh})
	wantCode(t, err, codes.Unauthenticated)
	_, err = p.users.CreateUser(bearer(gone.access), &userv1.CreateUserRequest{Email: "backdoor@example.com", Password: "backdoor pw", Roles: []string{"admin"}})
	wantCode(t, err, codes.Unauthenticated)
}

// TestPasswordResetEndsEarlierSessions: an admin resets a user's password.
// A refresh token stolen before the reset no longer rotates, and the
// access token minted before it is refused by the User service.
func TestPasswordResetEndsEarlierSessions(t *testing.T) {
	p := startPair(t)
	root := p.admin()
	id := p.createUser(root, "victim@example.com", "old passphrase 1")
	stolen := p.login("victim@example.com", "old passphrase 1")
	if _, err := p.users.UpdateUser(bearer(root.access), &userv1.UpdateUserRequest{Id: id, Password: "new passphrase 2", UpdateMask: mask("password")}); err != nil {
		t.Fatalf("reset: %v", err)
	}
	_, err := p.auth.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{RefreshToken: stolen.refresh})
	wantCode(t, err, codes.Unauthenticated)
	_, err = p.users.GetUser(bearer(stolen.access), &userv1.GetUserRequest{Id: id})
	wantCode(t, err, codes.Unauthenticated)
	// The owner logs in with the new password; that session works.
	fresh := p.login("victim@example.com", "new passphrase 2")
	if _, err := p.users.GetUser(bearer(fresh.access), &userv1.GetUserRequest{Id: id}); err != nil {
		t.Fatalf("new session after reset: %v", err)
	}
	if _, err := p.auth.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{RefreshToken: fresh.refresh}); err != nil {
		t.Fatalf("refreshing the new session: %v", err)
	}
}

// TestSelfServiceCannotChangeCredentials: a plain user's access token alone
// (a stolen one, say) changes neither the password nor the email.
func TestSelfServiceCannotChangeCredentials(t *testing.T) {
	p := startPair(t)
	root := p.admin()
	id := p.createUser(root, "owner@example.com", "tulip mango violin")
	s := p.login("owner@example.com", "tulip mango violin")
	for _, tc := range []struct {
		name string
		req  *userv1.UpdateUserRequest
	}{
		{"password", &userv1.UpdateUserRequest{Id: id, Password: "attacker passphrase", UpdateMask: mask("password")}},
		{"email", &userv1.UpdateUserRequest{Id: id, Email: "attacker@example.com", UpdateMask: mask("email")}},
		{"password without a mask", &userv1.UpdateUserRequest{Id: id, Password: "attacker passphrase"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.users.UpdateUser(bearer(s.access), tc.req)
			wantCode(t, err, codes.PermissionDenied)
		})
	}
	// Nothing changed: the owner still logs in as before.
	p.login("owner@example.com", "tulip mango violin")
	// A display name is still the user's own business.
	if _, err := p.users.UpdateUser(bearer(s.access), &userv1.UpdateUserRequest{Id: id, DisplayName: "Owner", UpdateMask: mask("display_name")}); err != nil {
		t.Fatalf("display name: %v", err)
	}
}

// TestNoLostUpdates: a user renames itself in a loop while an admin
// demotes it and resets its password. Every round, the admin's changes
// survive.
func TestNoLostUpdates(t *testing.T) {
	p := startPair(t, "LOGIN_RATE_PER_ADDR=0")
	root := p.admin()
	const rounds = 100
	lost := 0
	for i := range rounds {
		id := p.createUser(root, "racer"+itoa(i)+"@example.com", "racer passphrase", "admin")
		me := p.login("racer"+itoa(i)+"@example.com", "racer passphrase")
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 50; n++ {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = p.users.UpdateUser(bearer(me.access), &userv1.UpdateUserRequest{Id: id, DisplayName: "name " + itoa(n), UpdateMask: mask("display_name")})
			}
		}()
		_, err := p.users.UpdateUser(bearer(root.access), &userv1.UpdateUserRequest{Id: id, Password: "reset passphrase", UpdateMask: mask("roles", "password")})
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("round %d: admin update: %v", i, err)
		}
		got, err := p.users.GetUser(bearer(root.access), &userv1.GetUserRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		_, loginErr := p.auth.Login(context.Background(), &authv1.LoginRequest{Email: "racer" + itoa(i) + "@example.com", Password: "reset passphrase"})
		if len(got.GetUser().GetRoles()) != 0 || loginErr != nil {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("the admin's update was undone in %d of %d rounds", lost, rounds)
	}
}

func itoa(i int) string { return string(rune('a'+i/26%26)) + string(rune('a'+i%26)) }

// TestRolesAndTheLastAdmin: the service role is not assignable through the
// API, and the last admin can neither delete nor demote itself.
func TestRolesAndTheLastAdmin(t *testing.T) {
	p := startPair(t)
	root := p.admin()
	_, err := p.users.CreateUser(bearer(root.access), &userv1.CreateUserRequest{Email: "svc@example.com", Password: "service passphrase", Roles: []string{"service"}})
	wantCode(t, err, codes.InvalidArgument)
	id := p.createUser(root, "human@example.com", "granite otter waltz")
	_, err = p.users.UpdateUser(bearer(root.access), &userv1.UpdateUserRequest{Id: id, Roles: []string{"service"}, UpdateMask: mask("roles")})
	wantCode(t, err, codes.InvalidArgument)

	_, err = p.users.UpdateUser(bearer(root.access), &userv1.UpdateUserRequest{Id: root.id, UpdateMask: mask("roles")})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = p.users.DeleteUser(bearer(root.access), &userv1.DeleteUserRequest{Id: root.id})
	wantCode(t, err, codes.FailedPrecondition)
	if _, err := p.users.ListUsers(bearer(root.access), &userv1.ListUsersRequest{}); err != nil {
		t.Fatalf("the last admin is no longer an admin: %v", err)
	}
}

// TestChangePasswordEndsOtherSessions: the owner changes its password with
// the current one; a session started elsewhere (a stolen refresh token)
// ends, and so does the caller's own; the new password logs in.
func TestChangePasswordEndsOtherSessions(t *testing.T) {
	p := startPair(t)
	root := p.admin()
	id := p.createUser(root, "owner@example.com", "tulip mango violin")
	stolen := p.login("owner@example.com", "tulip mango violin")
	mine := p.login("owner@example.com", "tulip mango violin")
	_, err := p.users.ChangePassword(bearer(mine.access), &userv1.ChangePasswordRequest{Id: id, CurrentPassword: "tulip mango violin", NewPassword: "a better passphrase"})
	if err != nil {
		t.Fatalf("ChangePassword: %v", err)
	}
	for name, s := range map[string]session{"stolen": stolen, "own": mine} {
		_, err := p.auth.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{RefreshToken: s.refresh})
		wantCode(t, err, codes.Unauthenticated)
		_, err = p.users.GetUser(bearer(s.access), &userv1.GetUserRequest{Id: id})
		wantCode(t, err, codes.Unauthenticated)
		if reason := authn.RejectionReason(err); reason != authn.ReasonSessionEnded {
			t.Errorf("%s session: reason %q, want %s", name, reason, authn.ReasonSessionEnded)
		}
	}
	fresh := p.login("owner@example.com", "a better passphrase")
	if _, err := p.auth.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{RefreshToken: fresh.refresh}); err != nil {
		t.Fatalf("refresh of the new session: %v", err)
	}
	// The first refresh learnt that the sessions ended and revoked every
	// family of the user below the new version, so the second met a
	// revoked family.
	for result, want := range map[string]float64{"session_ended": 1, "revoked": 1} {
		if got := metricValue(t, p.authApp.Metrics.Registry, "gatehouse_refreshes_total", "result", result); got != want {
			t.Errorf("refreshes_total{result=%s} = %v, want %v", result, got, want)
		}
	}
}

// TestRevokeAllSessions: "log out everywhere", by the user itself or by an
// admin, ends every refresh family and every earlier access token at the
// User service; a plain user cannot do it to another.
func TestRevokeAllSessions(t *testing.T) {
	p := startPair(t)
	root := p.admin()
	id := p.createUser(root, "ada@example.com", "ada keeps a passphrase")
	other := p.createUser(root, "bo@example.com", "bo keeps a passphrase")
	a1, a2 := p.login("ada@example.com", "ada keeps a passphrase"), p.login("ada@example.com", "ada keeps a passphrase")
	bo := p.login("bo@example.com", "bo keeps a passphrase")

	_, err := p.auth.RevokeAllSessions(context.Background(), &authv1.RevokeAllSessionsRequest{UserId: id})
	wantCode(t, err, codes.Unauthenticated)
	_, err = p.auth.RevokeAllSessions(bearer(bo.access), &authv1.RevokeAllSessionsRequest{UserId: id})
	wantCode(t, err, codes.PermissionDenied)
	_, err = p.auth.RevokeAllSessions(bearer(root.access), &authv1.RevokeAllSessionsRequest{UserId: "not-a-uuid"})
	wantCode(t, err, codes.InvalidArgument)

	if _, err := p.auth.RevokeAllSessions(bearer(a1.access), &authv1.RevokeAllSessionsRequest{UserId: id}); err != nil {
		t.Fatalf("RevokeAllSessions by the user: %v", err)
	}
	for _, s := range []session{a1, a2} {
		_, err := p.auth.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{RefreshToken: s.refresh})
		wantCode(t, err, codes.Unauthenticated)
		_, err = p.users.GetUser(bearer(s.access), &userv1.GetUserRequest{Id: id})
		wantCode(t, err, codes.Unauthenticated)
	}
	// The families were revoked at once, not only refused: a refresh now
	// counts as "revoked".
	if got := metricValue(t, p.authApp.Metrics.Registry, "gatehouse_refreshes_total", "result", "revoked"); got != 2 {
		t.Errorf("refreshes_total{result=revoked} = %v, want 2", got)
	}
	// Bo's sessions are untouched; an admin ends them.
	if _, err := p.auth.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{RefreshToken: bo.refresh}); err != nil {
		t.Fatalf("bo's refresh: %v", err)
	}
	if _, err := p.auth.RevokeAllSessions(bearer(root.access), &authv1.RevokeAllSessionsRequest{UserId: other}); err != nil {
		t.Fatalf("RevokeAllSessions by an admin: %v", err)
	}
	_, err = p.users.GetUser(bearer(bo.access), &userv1.GetUserRequest{Id: other})
	wantCode(t, err, codes.Unauthenticated)
	// The revoked token of ada cannot end anything any more.
	_, err = p.auth.RevokeAllSessions(bearer(a1.access), &authv1.RevokeAllSessionsRequest{UserId: id})
	wantCode(t, err, codes.Unauthenticated)
	// A new login works.
	p.login("ada@example.com", "ada keeps a passphrase")
}

// TestRefreshWhileUserServiceIsDown: the Auth service cannot ask the User
// service who the user is now. The refresh answers Unavailable and the
// refresh token stays usable: once the User service is back, the same
// token rotates.
func TestRefreshWhileUserServiceIsDown(t *testing.T) {
	proxy := faultproxy.New(t, "")
	p := startPair(t, "USER_SERVICE_ADDR="+proxy.Addr())
	proxy.SetTarget(p.userAddr)
	root := p.admin()
	p.createUser(root, "ada@example.com", "ada keeps a passphrase")
	s := p.login("ada@example.com", "ada keeps a passphrase")

	proxy.SetDown(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: s.refresh})
	wantCode(t, err, codes.Unavailable)

	proxy.SetDown(false)
	eventually(t, "refresh with the kept token", func() bool {
		_, err := p.auth.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{RefreshToken: s.refresh})
		return err == nil
	})
}

// TestAuthServicePolicy walks every Auth method against its policy: each
// has a declared access, and RevokeAllSessions refuses a plain user acting
// on another user.
func TestAuthServicePolicy(t *testing.T) {
	p := startPair(t)
	root := p.admin()
	p.createUser(root, "plain@example.com", "copper fjord lantern")
	other := p.createUser(root, "other@example.com", "maple comet drizzle")
	plain := p.login("plain@example.com", "copper fjord lantern")
	authztest.CheckPolicy(t, p.authConn, p.authApp.Server.GRPC.GetServiceInfo(), auth.Policy(),
		authztest.Caller{Ctx: bearer(plain.access), ID: plain.id, Other: other})
}

// TestExpiredRefreshWhileUserServiceIsDown: a refresh token past its idle
// timeout is refused as such (Unauthenticated) without asking the User
// service, so an outage does not turn "log in again" into "retry later".
func TestExpiredRefreshWhileUserServiceIsDown(t *testing.T) {
	proxy := faultproxy.New(t, "")
	p := startPair(t, "USER_SERVICE_ADDR="+proxy.Addr(), "REFRESH_IDLE_TIMEOUT=1s")
	proxy.SetTarget(p.userAddr)
	root := p.admin()
	p.createUser(root, "ada@example.com", "ada keeps a passphrase")
	s := p.login("ada@example.com", "ada keeps a passphrase")
	time.Sleep(1500 * time.Millisecond) // past the idle timeout
	proxy.SetDown(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: s.refresh})
	wantCode(t, err, codes.Unauthenticated)
}
