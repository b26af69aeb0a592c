//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// adminLogin logs the chart's bootstrap admin in, with the password the
// chart generated into <fullname>-bootstrap-admin, through the Auth
// service at addr.
func adminLogin(t *testing.T, addr string) string {
	t.Helper()
	out, err := exec.Command(kubectl, "-n", namespace, "get", "secret", fullname()+"-bootstrap-admin",
		"-o", "jsonpath={.data.password}").Output()
	if err != nil {
		t.Fatalf("reading the bootstrap admin's password: %v", err)
	}
	pw, err := base64.StdEncoding.DecodeString(string(out))
	if err != nil {
		t.Fatal(err)
	}
	resp, code := call(t, addr, "auth.v1.AuthService/Login", "", map[string]string{"email": "admin@example.com", "password": string(pw)})
	return str(must(t, resp, code, "OK"), "accessToken")
}

// rolesOf reads the roles claim of a JWT without verifying it (the
// services did).
func rolesOf(t *testing.T, token string) []string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Roles []string `json:"roles"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Roles
}

// eachPod port-forwards to every ready pod of a component.
func eachPod(t *testing.T, component string, port int) []string {
	t.Helper()
	var addrs []string
	for _, p := range podsOf(t, component) {
		if p.Ready {
			addrs = append(addrs, forwardFor(t, namespace, "pod/"+p.Name, port))
		}
	}
	if len(addrs) < 2 {
		t.Fatalf("%d ready %s pods, want the 2 replicas of the e2e release", len(addrs), component)
	}
	return addrs
}

// TestSessionsFollowTheAccount: with 2 replicas of each service on
// PostgreSQL, a session started through one Auth replica and refreshed
// through the other reflects the account as it is now: a demoted admin's
// refresh carries no admin role, a deleted user's refresh is refused, and a
// password change ends the user's other sessions at both User replicas.
func TestSessionsFollowTheAccount(t *testing.T) {
	auths, users := eachPod(t, "auth", 50052), eachPod(t, "user", 50051)
	root := adminLogin(t, auths[0])
	create := func(email, pw string, roles ...string) string {
		t.Helper()
		resp, code := call(t, users[0], "user.v1.UserService/CreateUser", root, map[string]any{"email": email, "password": pw, "roles": roles})
		return str(must(t, resp, code, "OK"), "user", "id")
	}
	loginAt := func(addr, email, pw string) (string, string) {
		t.Helper()
		resp, code := call(t, addr, "auth.v1.AuthService/Login", "", map[string]string{"email": email, "password": pw})
		must(t, resp, code, "OK")
		return str(resp, "accessToken"), str(resp, "refreshToken")
	}
	refreshAt := func(addr, refresh string) (map[string]any, string) {
		t.Helper()
		return call(t, addr, "auth.v1.AuthService/RefreshToken", "", map[string]string{"refresh_token": refresh})
	}

	t.Run("demoted admin", func(t *testing.T) {
		email := unique("second-admin")
		id := create(email, "a second key holder", "admin")
		access, refresh := loginAt(auths[0], email, "a second key holder")
		_, code := call(t, users[1], "user.v1.UserService/ListUsers", access, map[string]any{})
		must(t, nil, code, "OK")

		resp, code := call(t, users[1], "user.v1.UserService/UpdateUser", root, map[string]any{"id": id, "update_mask": map[string]any{"paths": []string{"roles"}}})
		must(t, resp, code, "OK")
		for _, u := range users {
			_, code := call(t, u, "user.v1.UserService/ListUsers", access, map[string]any{})
			must(t, nil, code, "PermissionDenied")
		}
		resp, code = refreshAt(auths[1], refresh)
		next := str(must(t, resp, code, "OK"), "accessToken")
		if roles := rolesOf(t, next); slices.Contains(roles, "admin") {
			t.Fatalf("refresh through the other Auth replica carries roles %v", roles)
		}
		_, code = call(t, users[0], "user.v1.UserService/ListUsers", next, map[string]any{})
		must(t, nil, code, "PermissionDenied")
		t.Logf("demoted at a User replica; its old token refused admin rights at both User replicas; refreshed through the other Auth replica: roles %v", rolesOf(t, next))
	})

	t.Run("deleted user", func(t *testing.T) {
		email := unique("deleted")
		id := create(email, "soon to be removed")
		access, refresh := loginAt(auths[1], email, "soon to be removed")
		resp, code := call(t, users[0], "user.v1.UserService/DeleteUser", root, map[string]string{"id": id})
		must(t, resp, code, "OK")
		_, code = refreshAt(auths[0], refresh)
		must(t, nil, code, "Unauthenticated")
		for _, u := range users {
			_, code := call(t, u, "user.v1.UserService/GetUser", access, map[string]string{"id": id})
			must(t, nil, code, "Unauthenticated")
		}
	})

	t.Run("password change ends the other sessions", func(t *testing.T) {
		email := unique("changer")
		id := create(email, "first passphrase")
		mine, myRefresh := loginAt(auths[0], email, "first passphrase")
		theirs, theirRefresh := loginAt(auths[1], email, "first passphrase")
		resp, code := call(t, users[1], "user.v1.UserService/ChangePassword", mine,
			map[string]string{"id": id, "current_password": "first passphrase", "new_password": "second passphrase"})
		must(t, resp, code, "OK")
		for i, r := range []string{theirRefresh, myRefresh} {
			_, code := refreshAt(auths[i], r)
			must(t, nil, code, "Unauthenticated")
		}
		for _, u := range users {
			_, code := call(t, u, "user.v1.UserService/GetUser", theirs, map[string]string{"id": id})
			must(t, nil, code, "Unauthenticated")
		}
		_, code = call(t, auths[1], "auth.v1.AuthService/Login", "", map[string]string{"email": email, "password": "first passphrase"})
		must(t, nil, code, "Unauthenticated")
		fresh, freshRefresh := loginAt(auths[1], email, "second passphrase")
		_, code = call(t, users[0], "user.v1.UserService/GetUser", fresh, map[string]string{"id": id})
		must(t, nil, code, "OK")
		resp, code = refreshAt(auths[0], freshRefresh)
		must(t, resp, code, "OK")
	})
}

// TestLoginLimitsAcrossReplicas: the two Auth replicas share the login
// limits through PostgreSQL. Wrong guesses for one account from one
// address, alternating between the replicas, are checked until the limit
// of ten a minute (plus a token every 6 s while the test runs), and then
// refused by both; with limits kept per replica, about twice as many would
// be checked. The owner, logging in from another address (a pod in the
// cluster), is not refused.
func TestLoginLimitsAcrossReplicas(t *testing.T) {
	auths := eachPod(t, "auth", 50052)
	email, pw := unique("limited"), "the limited owner's passphrase"
	signup(t, email, pw)
	start := time.Now()
	checked, refusedBy := 0, map[int]bool{}
	for i := 0; i < 40 && len(refusedBy) < 2; i++ {
		_, code := call(t, auths[i%2], "auth.v1.AuthService/Login", "", map[string]string{"email": email, "password": fmt.Sprintf("wrong guess %d", i)})
		switch code {
		case "Unauthenticated":
			checked++
		case "ResourceExhausted":
			refusedBy[i%2] = true
		default:
			t.Fatalf("guess %d at replica %d = %s", i, i%2, code)
		}
	}
	refills := int(time.Since(start) / (6 * time.Second))
	t.Logf("wrong guesses over 2 replicas in %s: %d checked, then refused by %d replicas", time.Since(start).Round(time.Second), checked, len(refusedBy))
	if len(refusedBy) < 2 || checked > 10+refills+1 {
		t.Fatalf("%d guesses checked before both replicas refused (%d did); a shared limit allows 10 and %d refills", checked, len(refusedBy), refills)
	}
	var probe struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	startLoadgen(t, "e2e-limits", "-scenario", "probe", "-email", email, "-password", pw).report(2*time.Minute, &probe)
	t.Logf("the owner from a pod in the cluster: %s", probe.Code)
	if probe.Code != "OK" {
		t.Errorf("the owner's login from another address = %s (%s), want OK", probe.Code, probe.Message)
	}
}
