package readme

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/hack/localproc"
)

func TestBlocks(t *testing.T) {
	tests := []struct {
		name    string
		md      string
		want    []Block
		wantErr bool
	}{
		{name: "none", md: "# t\n```sh\nmake test\n```\n"},
		{name: "one", md: "x\n```sh run=plain\na\nb\n```\n", want: []Block{{Mode: "plain", Line: 2, Text: "a\nb\n"}}},
		{name: "untagged and bare blocks are skipped, fences inside them too",
			md:   "```\n```sh run=tls\n```\n```json\n{}\n```\n```sh run=mtls\nc\n```\n",
			want: []Block{{Mode: "mtls", Line: 7, Text: "c\n"}}},
		{name: "unterminated", md: "```sh run=plain\na\n", wantErr: true},
		{name: "garbage", md: "\x00```\xff\n```sh run=\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Blocks([]byte(tt.md))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzBlocks: any document parses or errors; blocks never overlap.
func FuzzBlocks(f *testing.F) {
	md, _ := os.ReadFile(filepath.Join(root(f), "README.md"))
	f.Add(md)
	f.Add([]byte("```sh run=x\n```"))
	f.Fuzz(func(t *testing.T, md []byte) {
		bs, err := Blocks(md)
		if err != nil {
			return
		}
		last := 0
		for _, b := range bs {
			if b.Line <= last || b.Mode == "" {
				t.Fatalf("block %+v after line %d", b, last)
			}
			last = b.Line
		}
	})
}

// expectations are what the blocks of each mode must print, beyond not
// failing: the refusals they demonstrate (a step written `|| echo` would
// otherwise pass whether or not the service refused).
var expectations = map[string][]string{
	"plain": {
		`"displayName": "Ada L."`,           // UpdateUser wrote the masked field
		`"reason": "REFRESH_TOKEN_INVALID"`, // the reused refresh token was refused...
		"refused, as it should be",          // ...by the step that shows it
		`"subject": "`,                      // ValidateToken accepted the last token
	},
	"tls":  {`"status": "SERVING"`, `"kty":"OKP"`, "walk-through passed"},
	"mtls": {`"status": "SERVING"`},
}

// TestReadmeWalkthrough pastes every `sh run=<mode>` block of the README
// into bash against a fresh hack/run.sh in that mode, on free ports (the
// only edit made to the text: the README's ports become those).
func TestReadmeWalkthrough(t *testing.T) {
	md, err := os.ReadFile(filepath.Join(root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := Blocks(md)
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string][]string{"plain": nil, "tls": {"TLS=1"}, "mtls": {"TLS=1", "TLS_CLIENT_AUTH=require"}}
	byMode := map[string][]Block{}
	for _, b := range blocks {
		if _, ok := modes[b.Mode]; !ok {
			t.Fatalf("README.md:%d: unknown mode %q (want plain, tls or mtls)", b.Line, b.Mode)
		}
		byMode[b.Mode] = append(byMode[b.Mode], b)
	}
	for mode, env := range modes {
		t.Run(mode, func(t *testing.T) {
			if len(byMode[mode]) == 0 {
				t.Fatalf("README.md has no `sh run=%s` block: the walk-through lost its test", mode)
			}
			t.Parallel()
			dir := t.TempDir()
			r := startRun(t, dir, env...)
			// The blocks run from a directory laid out like the repository's
			// root: .data (the run's DATA), bin and hack.
			for _, l := range []string{"bin", "hack"} {
				if err := os.Symlink(filepath.Join(root(t), l), filepath.Join(dir, l)); err != nil {
					t.Fatal(err)
				}
			}
			for _, b := range byMode[mode] {
				script := r.ports.Replace(b.Text)
				cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(),
					"PATH="+filepath.Dir(tool(t, "GRPCURL", "grpcurl"))+":"+filepath.Dir(tool(t, "GOJQ", "gojq"))+":"+os.Getenv("PATH"),
					"GRPCURL="+tool(t, "GRPCURL", "grpcurl"),
					"USER_ADDR="+r.dial["USER_GRPC_ADDR"], "AUTH_ADDR="+r.dial["AUTH_GRPC_ADDR"])
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("README.md:%d (sh run=%s) failed: %v\n--- script\n%s--- output\n%s\n--- user.log\n%s", b.Line, mode, err, script, out, r.log("user"))
				}
				t.Logf("README.md:%d: %d lines of output", b.Line, bytes.Count(out, []byte("\n")))
				for _, want := range expectations[mode] {
					if !bytes.Contains(out, []byte(want)) {
						t.Errorf("README.md:%d (sh run=%s): the output lacks %q: a step that should be refused or answered was not\n%s", b.Line, mode, want, out)
					}
				}
			}
		})
	}
}

// TestBusyPortNamedAtOnce: the first `make run` of the issue hung for
// 17 minutes when 50051 was taken. Now every address names itself in one
// line and the start ends at once, whether the port is found taken before
// the start (loopback) or by the service's own listen (any other host).
func TestBusyPortNamedAtOnce(t *testing.T) {
	for _, v := range []string{"USER_GRPC_ADDR", "USER_HTTP_ADDR", "AUTH_GRPC_ADDR", "AUTH_HTTP_ADDR"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			env := freeAddrs(t)
			env[v] = busy.Addr().String()
			start := time.Now()
			stdout, stderr, code := runOnce(t, t.TempDir(), env)
			took := time.Since(start)
			t.Logf("exit %d after %v: %s", code, took.Round(time.Millisecond), stderr)
			if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 ||
				!strings.Contains(stderr, v+"="+busy.Addr().String()) || !strings.Contains(stderr, "in use") {
				t.Errorf("want exit 1 and one line naming %s=%s as in use; got exit %d\nstderr: %s\nstdout: %s", v, busy.Addr(), code, stderr, stdout)
			}
			// Generous, to tell "at once" from the old hang on a busy CI
			// machine; the figure itself is in the log line above.
			if took > 20*time.Second {
				t.Errorf("took %v to give up", took)
			}
		})
	}
	t.Run("an address this machine does not have", func(t *testing.T) {
		t.Parallel()
		env := freeAddrs(t)
		env["AUTH_GRPC_ADDR"] = "203.0.113.7:50052" // TEST-NET-3: assigned to nobody
		_, stderr, code := runOnce(t, t.TempDir(), env)
		if code != 1 || !strings.Contains(stderr, "set AUTH_GRPC_ADDR=") || !strings.Contains(stderr, "203.0.113.7:50052") {
			t.Errorf("want exit 1 naming AUTH_GRPC_ADDR; got exit %d: %s", code, stderr)
		}
	})
}

// TestSecondCopyRefused: a second `make run` with the same data directory
// said "Gatehouse is running" (the first copy answered), failed without a
// reason and truncated the first copy's logs.
func TestSecondCopyRefused(t *testing.T) {
	dir := t.TempDir()
	first := startRun(t, dir)
	before := map[string]int{"user": len(first.log("user")), "auth": len(first.log("auth"))}
	stdout, stderr, code := runOnce(t, dir, first.env)
	if code != 1 || !strings.Contains(stderr, fmt.Sprintf("already running (pid %d)", first.cmd.Process.Pid)) {
		t.Errorf("second copy: want exit 1 and 'already running (pid %d)'; got exit %d\nstderr: %s", first.cmd.Process.Pid, code, stderr)
	}
	if strings.Contains(stdout, "Gatehouse is running") {
		t.Errorf("second copy claimed to be running:\n%s", stdout)
	}
	for svc, n := range before {
		if got := len(first.log(svc)); got < n {
			t.Errorf("%s.log of the first copy shrank from %d to %d bytes", svc, n, got)
		}
	}
	if !first.serving(t) {
		t.Error("the first copy stopped serving")
	}
}

// TestCtrlCExitsZero: Ctrl-C in a terminal printed "a service exited" and
// `make: *** Error 1`. Here `make run` runs in a real pseudo-terminal
// (script(1)) and gets a real ^C from its line discipline: both services
// drain, make exits 0 and prints no error.
func TestCtrlCExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("builds through make")
	}
	if runtime.GOOS != "linux" {
		t.Skip("drives util-linux script(1); BSD script takes other flags")
	}
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatalf("script(1) (util-linux) is needed to give make a terminal: %v", err)
	}
	dir := t.TempDir()
	env := freeAddrs(t)
	args := []string{"make", "--no-print-directory", "-C", root(t), "run", "DATA=" + filepath.Join(dir, ".data")}
	for k, v := range env {
		args = append(args, k+"="+v)
	}
	// script -e returns the child's status; -q keeps its banner out.
	cmd := exec.Command(script, "-qefc", strings.Join(args, " ")+"; echo MAKE_EXIT=$?", "/dev/null")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	if !waitFor(func() bool { return strings.Contains(out.String(), "Ctrl-C stops both services") }, 3*time.Minute) {
		t.Fatalf("make run did not start:\n%s", out.String())
	}
	if _, err := stdin.Write([]byte{3}); err != nil { // ^C, as the terminal sends it
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("make run still running a minute after ^C:\n%s", out.String())
	}
	got := out.String()
	tail := got[strings.LastIndex(got, "Ctrl-C stops both services"):]
	t.Logf("after ^C:%s", tail)
	if !strings.Contains(tail, "MAKE_EXIT=0") {
		t.Errorf("make run did not exit 0 after ^C")
	}
	for _, bad := range []string{"Error", "exited", "Interrupt", "***"} {
		if strings.Contains(tail, bad) {
			t.Errorf("output after ^C contains %q", bad)
		}
	}
	for k, a := range env {
		if l, err := net.Listen("tcp", a); err != nil {
			t.Errorf("%s=%s still taken after ^C: %v", k, a, err)
		} else {
			_ = l.Close()
		}
	}
	// Drained, not cut short: each service got one signal (the script's
	// SIGTERM), not the terminal's SIGINT and then a second.
	for _, svc := range []string{"user", "auth"} {
		b, _ := os.ReadFile(filepath.Join(dir, ".data", svc+".log"))
		log := string(b)
		if !strings.Contains(log, `"msg":"shutting down"`) || !strings.Contains(log, `"msg":"stopped"`) || strings.Contains(log, "stopping at once") {
			t.Errorf("%s.log after ^C: want a graceful shutdown (shutting down, stopped) and no forced stop:\n%s", svc, lastLines(log, 5))
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// --- helpers -----------------------------------------------------------------

type run struct {
	cmd   *exec.Cmd
	dir   string
	env   map[string]string
	dial  map[string]string
	ports *strings.Replacer
	out   *syncBuffer
}

func (r *run) log(svc string) string {
	b, _ := os.ReadFile(filepath.Join(r.dir, ".data", svc+".log"))
	return string(b)
}

func (r *run) serving(t *testing.T) bool {
	args := []string{"-plaintext", "-max-time", "5", r.dial["USER_GRPC_ADDR"], "grpc.health.v1.Health/Check"}
	out, err := exec.Command(tool(t, "GRPCURL", "grpcurl"), args...).CombinedOutput()
	return err == nil && bytes.Contains(out, []byte("SERVING"))
}

// startRun starts hack/run.sh with DATA=dir/.data on free ports and waits
// for "Gatehouse is running"; the test's cleanup stops it with SIGINT.
func startRun(t *testing.T, dir string, extraEnv ...string) *run {
	t.Helper()
	env := freeAddrs(t)
	cmd := runCmd(t, dir, env, extraEnv...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	ok := waitFor(func() bool {
		select {
		case <-exited:
			return true
		default:
			return strings.Contains(out.String(), "Gatehouse is running")
		}
	}, 2*time.Minute)
	if !ok || !strings.Contains(out.String(), "Gatehouse is running") {
		t.Fatalf("hack/run.sh did not start:\n%s", out.String())
	}
	r := &run{cmd: cmd, dir: dir, env: env, out: out, dial: map[string]string{}}
	var pairs []string
	for k, a := range env {
		_, port, _ := net.SplitHostPort(a)
		r.dial[k] = "localhost:" + port
	}
	for k, readme := range map[string]string{"USER_GRPC_ADDR": "50051", "USER_HTTP_ADDR": "8081", "AUTH_GRPC_ADDR": "50052", "AUTH_HTTP_ADDR": "8082"} {
		pairs = append(pairs, "localhost:"+readme, r.dial[k])
	}
	r.ports = strings.NewReplacer(pairs...)
	return r
}

// runOnce runs hack/run.sh to its end (it fails to start, or is stopped
// after a minute) and returns its output and exit code.
func runOnce(t *testing.T, dir string, env map[string]string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := runCmd(t, dir, env)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Start()
	if err == nil {
		go func() { <-ctx.Done(); _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }()
		err = cmd.Wait()
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func runCmd(t *testing.T, dir string, env map[string]string, extraEnv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(root(t), "hack", "run.sh"))
	cmd.Env = append(os.Environ(), "BIN="+binaries(t), "GRPCURL="+tool(t, "GRPCURL", "grpcurl"),
		"DATA="+filepath.Join(dir, ".data"), "DRAIN_DELAY=0s")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	// Its own process group, as a terminal's foreground job: a signal to
	// -pid reaches the script and both services, as Ctrl-C does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

var (
	portsMu sync.Mutex
	given   = map[string]bool{}
)

// freeAddrs picks four free loopback ports for the four addresses, never
// one it gave out before (the parallel tests would otherwise race for it).
func freeAddrs(t *testing.T) map[string]string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	env := map[string]string{}
	for _, k := range []string{"USER_GRPC_ADDR", "USER_HTTP_ADDR", "AUTH_GRPC_ADDR", "AUTH_HTTP_ADDR"} {
		for env[k] == "" || given[env[k]] {
			ports, err := localproc.FreePorts(1)
			if err != nil {
				t.Fatal(err)
			}
			env[k] = fmt.Sprintf("127.0.0.1:%d", ports[0])
		}
		given[env[k]] = true
	}
	return env
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the two services once per test binary, as `make build`
// does, into a directory of their own.
func binaries(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the services (make test runs it; make check is -short)")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "gatehouse-readme-bin-")
		if buildErr != nil {
			return
		}
		buildErr = localproc.Build(root(t), binDir, "grpcnotrace")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// tool finds a pinned tool: $ENV (make test-go sets it), else ./bin.
func tool(t testing.TB, env, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	p := filepath.Join(root(t), "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found: run `make bin/%s` (or `make test`, which builds it), or set %s", p, name, env)
	}
	return p
}

func root(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", "..")
}

func waitFor(cond func() bool, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
