package app

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database/dbtest"
)

// cuttableProxy forwards TCP to a real PostgreSQL and can drop every
// connection and refuse new ones, like a database failover or a network
// partition, without touching the server other tests use.
type cuttableProxy struct {
	target string
	ln     net.Listener
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *cuttableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttableProxy{target: target, ln: ln}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.setDown(true)
		p.wg.Wait()
	})
	return p
}

func (p *cuttableProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.wg.Add(2)
		p.mu.Unlock()
		go func() { defer p.wg.Done(); _, _ = io.Copy(up, c); _ = up.Close() }()
		go func() { defer p.wg.Done(); _, _ = io.Copy(c, up); _ = c.Close() }()
	}
}

func (p *cuttableProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.conns = nil
	}
}

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
	proxy := newProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "1")
	u.RawQuery = q.Encode()

	e := startApp(t, "DATABASE_URL="+u.String())
	alice := e.signup("alice@example.com")
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

	proxy.setDown(true)
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
	_, err = e.client.CreateUser(context.Background(), &userv1.CreateUserRequest{Email: "lost@example.com", Password: "password1"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("CreateUser while the database is down: %v, want Unavailable", err)
	}

	proxy.setDown(false)
	waitStatus(healthpb.HealthCheckResponse_SERVING)
	got, err := e.client.GetUser(e.admin(), &userv1.GetUserRequest{Id: alice.GetId()})
	if err != nil || got.GetUser().GetEmail() != "alice@example.com" || !got.GetUser().GetCreateTime().AsTime().Equal(alice.GetCreateTime().AsTime()) {
		t.Fatalf("after recovery: %v, %v", got.GetUser(), err)
	}
	// A call refused during the outage left nothing behind.
	if _, err := e.client.CreateUser(context.Background(), &userv1.CreateUserRequest{Email: "lost@example.com", Password: "password1"}); err != nil {
		t.Errorf("re-creating the user refused during the outage: %v", err)
	}
}
