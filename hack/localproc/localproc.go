package localproc

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Proc is a started process.
type Proc struct {
	Cmd      *exec.Cmd
	LogPath  string
	HTTPAddr string // "" when it has no HTTP port
	done     chan struct{}
}

// Start runs bin with args and exactly env, its output in logPath, pinned
// to the CPU list cpu with taskset unless cpu is "".
func Start(bin string, args, env []string, cpu, logPath string) (*Proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	name, argv := bin, args
	if cpu != "" {
		name, argv = "taskset", append([]string{"-c", cpu, bin}, args...)
	}
	cmd := exec.Command(name, argv...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, err
	}
	p := &Proc{Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(p.done) }()
	return p, nil
}

// PID is the process id (through taskset's exec, the server's own).
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Stop sends SIGTERM and waits up to 10 s, then kills.
func (p *Proc) Stop() {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.Cmd.Process.Kill()
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitServing polls grpc.health.v1 at addr every 2ms, in plaintext, and
// returns the time from the call to the first SERVING answer.
func WaitServing(addr string, p *Proc) (time.Duration, error) {
	return WaitServingWith(addr, p, insecure.NewCredentials())
}

// WaitServingWith is WaitServing over the transport creds (TLS, say).
func WaitServingWith(addr string, p *Proc, creds credentials.TransportCredentials) (time.Duration, error) {
	start := time.Now()
	// grpc-go's default reconnect backoff starts at 1s, which would be
	// measured instead of the server; retry connecting every few ms.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 2 * time.Millisecond, Multiplier: 1, MaxDelay: 2 * time.Millisecond},
			MinConnectTimeout: 100 * time.Millisecond,
		}))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	h := healthpb.NewHealthClient(conn)
	var last error
	for time.Since(start) < 20*time.Second {
		if p.Exited() {
			return 0, errors.New("exited before SERVING")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		r, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return time.Since(start), nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("health status %s", r.GetStatus())
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, fmt.Errorf("not SERVING within 20s (last: %w)", last)
}

// WriteKey writes a fresh Ed25519 signing key into dir as kid.pem.
func WriteKey(dir, kid string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, kid+".pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// FreePorts returns n loopback ports free a moment ago.
func FreePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var lc net.ListenConfig
	for range n {
		l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// CPUSeconds sums the user and system CPU time of the processes.
func CPUSeconds(pids []int) float64 {
	var total float64
	tick := 100.0 // USER_HZ on Linux
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command name.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(fields) > 12 {
			u, _ := strconv.ParseFloat(fields[11], 64)
			st, _ := strconv.ParseFloat(fields[12], 64)
			total += (u + st) / tick
		}
	}
	return total
}

// StatusField reads a kB field of /proc/PID/status, in MiB.
func StatusField(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// RSSMiB is the resident set now, PeakRSSMiB its high-water mark.
func RSSMiB(pid int) float64     { return StatusField(pid, "VmRSS") }
func PeakRSSMiB(pid int) float64 { return StatusField(pid, "VmHWM") }

// ResetPeakRSS restarts VmHWM counting (Linux: clear_refs 5).
func ResetPeakRSS(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0o600)
}

// Build compiles the Go packages (by default the two services) into outDir
// with the flags `make build` uses: static (CGO_ENABLED=0), -trimpath,
// stripped (-s -w, which also halves the link), the build tags given
// (comma-separated; grpcnotrace, as the images have it). root is the
// module root the packages are relative to.
func Build(root, outDir, tags string, pkgs ...string) error {
	if len(pkgs) == 0 {
		pkgs = []string{"./services/user", "./services/auth"}
	}
	args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", outDir + string(filepath.Separator)}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, pkgs...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	return nil
}

// Machine describes this machine for a results table: the CPU model (from
// /proc/cpuinfo), the CPU count, OS and architecture.
func Machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs, %s/%s", model, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
}
