package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
)

// These tests run the real binary: exit codes and signals are process
// behaviour no in-process test can show.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "user-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "user")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the binary: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestBadConfigExitsWithOneLine(t *testing.T) {
	for _, tt := range []struct{ env, want string }{
		{"DRAIN_DELAY=soon", `invalid DRAIN_DELAY="soon"`},
		{"JWT_SECRET=tooshort", "JWT_SECRET must be at least 32 bytes"},
		{"GRPC_MAX_CONCURRENT_STREAMS=lots", `invalid GRPC_MAX_CONCURRENT_STREAMS="lots"`},
	} {
		t.Run(tt.env, func(t *testing.T) {
			cmd := exec.Command(binary)
			cmd.Env = []string{tt.env, "DATABASE_URL=sqlite://" + filepath.Join(t.TempDir(), "u.db")}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit = %v, want status 1", err)
			}
			msg := strings.TrimSpace(stderr.String())
			if !strings.Contains(msg, tt.want) || strings.Count(msg, "\n") != 0 {
				t.Errorf("stderr = %q, want one line containing %q", msg, tt.want)
			}
		})
	}
}

// TestSIGTERMDrainsInFlightCalls: calls in flight at SIGTERM complete, the
// process exits 0 within DRAIN_DELAY + SHUTDOWN_TIMEOUT, and afterwards
// nothing answers.
func TestSIGTERMDrainsInFlightCalls(t *testing.T) {
	grpcAddr := freeAddr(t)
	cmd := exec.Command(binary)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stdout
	cmd.Env = []string{
		"GRPC_ADDR=" + grpcAddr, "HTTP_ADDR=" + freeAddr(t),
		"DATABASE_URL=sqlite://" + filepath.Join(t.TempDir(), "u.db"),
		"JWT_SECRET=0123456789abcdef0123456789abcdef",
		"DRAIN_DELAY=1s", "SHUTDOWN_TIMEOUT=10s",
		// One sign-up hashing slot, no sign-up limit and a long wait for
		// the slot: the sign-ups below queue up instead of being refused.
		"SIGNUP_HASH_CONCURRENCY=1", "SIGNUP_RATE_PER_ADDR=0", "PASSWORD_HASH_MAX_WAIT=20s",
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("service output:\n%s", stdout.String())
		}
	})

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not SERVING within 10s: %v %v", r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The image's HEALTHCHECK runs the binary's own healthcheck subcommand.
	if out, err := exec.Command(binary, "healthcheck", grpcAddr).CombinedOutput(); err != nil || !strings.Contains(string(out), "SERVING") {
		t.Errorf("user healthcheck %s: %v, %s", grpcAddr, err, out)
	}

	// With one sign-up hashing slot, 12 sign-ups (argon2id, ~50ms each) queue up
	// and are still in flight well after the signal.
	client := userv1.NewUserServiceClient(conn)
	const calls = 12
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := client.CreateUser(context.Background(), &userv1.CreateUserRequest{Email: fmt.Sprintf("u%d@example.com", i), Password: "velvet anchor 42"})
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("in-flight call failed across SIGTERM: %v", err)
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit = %v, want 0", err)
		}
	case <-time.After(11 * time.Second):
		t.Fatal("did not exit within DRAIN_DELAY + SHUTDOWN_TIMEOUT")
	}
	took := time.Since(sent)
	t.Logf("exited 0 %v after SIGTERM", took.Round(time.Millisecond))
	if took < time.Second {
		t.Errorf("exited after %v, before the 1s drain delay", took)
	}
	if strings.Contains(stdout.String(), "0123456789abcdef") || strings.Contains(stdout.String(), "velvet anchor 42") {
		t.Error("the log contains the JWT secret or a password")
	}
	for _, want := range []string{`"msg":"shutting down"`, `"msg":"stopped"`, `"JWT_SECRET":"******"`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("log lacks %s", want)
		}
	}
}
