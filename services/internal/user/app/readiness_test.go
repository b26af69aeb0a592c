package app

import (
	"context"
	"net/url"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/internal/faultproxy"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database/dbtest"
)

// TestReadinessFollowsDatabase: when PostgreSQL becomes unreachable the
// service reports NOT_SERVING (liveness stays SERVING, so Kubernetes does
// not restart it), calls fail with Unavailable, and when the database is
// back the service recovers by itself with every row intact.
func TestReadinessFollowsDatabase(t *testing.T) {
	dbURL := dbtest.PostgresURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := faultproxy.New(t, u.Host)
	u.Host = proxy.Addr()
	q := u.Query()
	q.Set("connect_timeout", "1")
	u.RawQuery = q.Encode()

	e := startApp(t, "DATABASE_URL="+u.String())
	alice := e.signup("alice@example.com")
	e.admin() // created while the database is up
	health := healthpb.NewHealthClient(e.conn)
	statusOf := func(svc string) healthpb.HealthCheckResponse_ServingStatus {
		r, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("health %q: %v", svc, err)
		}
		return r.GetStatus()
	}
	waitStatus := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for statusOf("") != want {
			if time.Now().After(deadline) {
				t.Fatalf("readiness did not become %v within 10s", want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	proxy.SetDown(true)
	waitStatus(healthpb.HealthCheckResponse_NOT_SERVING)
	if got := statusOf("user.v1.UserService"); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("service status = %v while the database is down", got)
	}
	if got := statusOf("liveness"); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("liveness = %v while the database is down; it must not restart the pod", got)
	}
	ctx, cancel := context.WithTimeout(e.admin(), 5*time.Second)
	_, err = e.client.GetUser(ctx, &userv1.GetUserRequest{Id: alice.GetId()})
	cancel()
	if c := status.Code(err); c != codes.Unavailable {
		t.Errorf("GetUser while the database is down: %v, want Unavailable", err)
	}
	_, err = e.client.CreateUser(context.Background(), &userv1.CreateUserRequest{Email: "lost@example.com", Password: "velvet anchor 42"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("CreateUser while the database is down: %v, want Unavailable", err)
	}

	proxy.SetDown(false)
	waitStatus(healthpb.HealthCheckResponse_SERVING)
	got, err := e.client.GetUser(e.admin(), &userv1.GetUserRequest{Id: alice.GetId()})
	if err != nil || got.GetUser().GetEmail() != "alice@example.com" || !got.GetUser().GetCreateTime().AsTime().Equal(alice.GetCreateTime().AsTime()) {
		t.Fatalf("after recovery: %v, %v", got.GetUser(), err)
	}
	// A call refused during the outage left nothing behind.
	if _, err := e.client.CreateUser(context.Background(), &userv1.CreateUserRequest{Email: "lost@example.com", Password: "velvet anchor 42"}); err != nil {
		t.Errorf("re-creating the user refused during the outage: %v", err)
	}
}
