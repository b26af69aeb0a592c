//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The guarantees of the README's "Guarantees" table, measured on the
// cluster. The load comes from hack/loadgen running as a pod in the
// release's namespace, since a port-forward dies with the pod it points
// at: the figures are what an in-cluster client following the documented
// client policy gets.

// loadgenImage is the image hack/kind/load.sh built and loaded.
func loadgenImage(t *testing.T) string {
	t.Helper()
	if img := os.Getenv("E2E_LOADGEN_IMAGE"); img != "" {
		return img
	}
	return imageFromEnv(t, "LOADGEN_IMAGE")
}

func kubectlRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(kubectl, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// loadgen is one run of hack/loadgen as a pod.
type loadgen struct {
	t    *testing.T
	name string
}

// startLoadgen starts hack/loadgen with args against the release's
// headless Services (round-robin over every ready pod) and waits until its
// warm-up is over, so what follows happens under load.
func startLoadgen(t *testing.T, name string, args ...string) *loadgen {
	t.Helper()
	// The CA from the User service's TLS Secret, as any client in the
	// namespace would mount it.
	return startLoadgenTrusting(t, name, releaseCAVolume(), args...)
}

// releaseCAVolume is the volume source of the release's CA bundle: ca.crt
// of the User service's TLS Secret.
func releaseCAVolume() map[string]any {
	return map[string]any{"secret": map[string]any{
		"secretName": fullname() + "-user-tls", "items": []map[string]string{{"key": "ca.crt", "path": "ca.crt"}},
	}}
}

// startLoadgenTrusting is startLoadgen with the volume that holds the
// ca.crt loadgen trusts, when the release serves TLS.
func startLoadgenTrusting(t *testing.T, name string, caVolume map[string]any, args ...string) *loadgen {
	t.Helper()
	args = append([]string{
		"-user-addr", fmt.Sprintf("dns:///%s-user-headless.%s.svc:50051", fullname(), namespace),
		"-auth-addr", fmt.Sprintf("dns:///%s-auth-headless.%s.svc:50052", fullname(), namespace),
	}, args...)
	container := map[string]any{
		"name": "loadgen", "image": loadgenImage(t), "args": args,
		"resources": map[string]any{"requests": map[string]string{"cpu": "50m", "memory": "32Mi"}, "limits": map[string]string{"memory": "256Mi"}},
	}
	var ca map[string]any
	if caFile != "" {
		container["args"] = append([]string{"-cacert", "/etc/gatehouse/ca/ca.crt"}, args...)
		ca = caVolume
	}
	runPod(t, name, map[string]string{"app.kubernetes.io/name": "gatehouse-e2e-loadgen"}, container, ca)
	return &loadgen{t: t, name: name}
}

// runPod starts a one-off pod of container in the release's namespace,
// as Pod Security "restricted" wants it, replacing one of that name, and
// deletes it when the test ends. caVolume, if not nil, is mounted at
// /etc/gatehouse/ca.
func runPod(t *testing.T, name string, labels map[string]string, container, caVolume map[string]any) {
	t.Helper()
	container["imagePullPolicy"] = "IfNotPresent"
	container["securityContext"] = map[string]any{
		"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
		"capabilities": map[string][]string{"drop": {"ALL"}},
	}
	var volumes []map[string]any
	if caVolume != nil {
		container["volumeMounts"] = []map[string]any{{"name": "ca", "mountPath": "/etc/gatehouse/ca", "readOnly": true}}
		v := map[string]any{"name": "ca"}
		for k, val := range caVolume {
			v[k] = val
		}
		volumes = append(volumes, v)
	}
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": namespace, "labels": labels},
		"spec": map[string]any{
			"restartPolicy":                "Never",
			"automountServiceAccountToken": false,
			"securityContext": map[string]any{
				"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
				"seccompProfile": map[string]string{"type": "RuntimeDefault"},
			},
			"containers": []map[string]any{container},
			"volumes":    volumes,
		},
	}
	manifest, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	_ = exec.Command(kubectl, "-n", namespace, "delete", "pod", name, "--ignore-not-found", "--wait").Run()
	cmd := exec.Command(kubectl, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(string(manifest))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("starting pod %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command(kubectl, "-n", namespace, "delete", "pod", name, "--ignore-not-found", "--wait=false").Run()
	})
}

// progressLine is loadgen's periodic "loadgen: 10s sent=..." line, printed
// only once the warm-up is over and the clock runs.
var progressLine = regexp.MustCompile(`(?m)^loadgen: \S+ sent=\d+`)

// waitWarm returns once the run's clock started (the pod logged its first
// progress line) or the pod already finished.
func (l *loadgen) waitWarm() {
	l.t.Helper()
	eventually(l.t, 2*time.Minute, "loadgen "+l.name+" warmed up", func() error {
		out, _ := exec.Command(kubectl, "-n", namespace, "logs", l.name).CombinedOutput()
		if progressLine.Match(out) || strings.Contains(string(out), `"scenario"`) {
			return nil
		}
		phase, _ := exec.Command(kubectl, "-n", namespace, "get", "pod", l.name, "-o", "jsonpath={.status.phase}").Output()
		if string(phase) == "Succeeded" || string(phase) == "Failed" {
			return nil
		}
		return fmt.Errorf("pod phase %s, log so far: %.300s", phase, out)
	})
}

// report waits for the pod to finish and decodes its JSON report into v.
func (l *loadgen) report(timeout time.Duration, v any) {
	l.t.Helper()
	var phase string
	eventually(l.t, timeout, "loadgen "+l.name+" finished", func() error {
		out, err := exec.Command(kubectl, "-n", namespace, "get", "pod", l.name, "-o", "jsonpath={.status.phase}").Output()
		if err != nil {
			return err
		}
		phase = string(out)
		if phase != "Succeeded" && phase != "Failed" {
			return fmt.Errorf("pod phase %s", phase)
		}
		return nil
	})
	out := kubectlRun(l.t, "-n", namespace, "logs", l.name)
	if phase != "Succeeded" {
		l.t.Fatalf("loadgen %s: pod %s:\n%s", l.name, phase, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], `{"scenario"`) {
			if err := json.Unmarshal([]byte(lines[i]), v); err != nil {
				l.t.Fatalf("loadgen %s: report: %v\n%s", l.name, err, lines[i])
			}
			return
		}
	}
	l.t.Fatalf("loadgen %s printed no report:\n%s", l.name, out)
}

type methodReport struct {
	Sent   int            `json:"sent"`
	OK     int            `json:"ok"`
	Failed int            `json:"failed"`
	Codes  map[string]int `json:"codes"`
}

type steadyReport struct {
	Sent      int                     `json:"sent"`
	OK        int                     `json:"ok"`
	Failed    int                     `json:"failed"`
	Planned   int                     `json:"planned"`
	ByMethod  map[string]methodReport `json:"by_method"`
	LatencyMS struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
		Max float64 `json:"max"`
	} `json:"latency_ms"`
	FirstErrors []string `json:"first_errors"`
	DurationS   float64  `json:"duration_s"`
}

func (r steadyReport) String() string {
	return fmt.Sprintf("%d calls in %.0fs (GetUser %d, Login %d), %d failed (%.3f%%), p50 %.1f ms, p99 %.1f ms, max %.0f ms",
		r.Sent, r.DurationS, r.ByMethod["GetUser"].Sent, r.ByMethod["Login"].Sent, r.Failed, 100*float64(r.Failed)/float64(max(r.Sent, 1)),
		r.LatencyMS.P50, r.LatencyMS.P99, r.LatencyMS.Max)
}

type podState struct {
	Name        string
	Phase       string
	Ready       bool
	Restarts    int // over all its containers
	Terminating bool
	Node        string
}

// pods lists the pods of the namespace that match a label selector
// (empty: all of them).
func pods(t *testing.T, selector string) []podState {
	t.Helper()
	args := []string{"-n", namespace, "get", "pods", "-o", "json"}
	if selector != "" {
		args = append(args, "-l", selector)
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string  `json:"name"`
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
			Spec struct {
				NodeName string `json:"nodeName"`
			} `json:"spec"`
			Status struct {
				Phase      string `json:"phase"`
				Conditions []struct {
					Type   string `json:"type"`
					Status string `json:"status"`
				} `json:"conditions"`
				ContainerStatuses []struct {
					RestartCount int `json:"restartCount"`
				} `json:"containerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(kubectlRun(t, args...)), &list); err != nil {
		t.Fatal(err)
	}
	var out []podState
	for _, p := range list.Items {
		ps := podState{Name: p.Metadata.Name, Phase: p.Status.Phase, Terminating: p.Metadata.DeletionTimestamp != nil, Node: p.Spec.NodeName}
		for _, c := range p.Status.Conditions {
			if c.Type == "Ready" {
				ps.Ready = c.Status == "True"
			}
		}
		for _, c := range p.Status.ContainerStatuses {
			ps.Restarts += c.RestartCount
		}
		out = append(out, ps)
	}
	return out
}

// podsOf lists the pods of one component of the release, leaving out
// those already terminating.
func podsOf(t *testing.T, component string) []podState {
	t.Helper()
	var live []podState
	for _, p := range pods(t, "app.kubernetes.io/instance="+release+",app.kubernetes.io/component="+component) {
		if !p.Terminating {
			live = append(live, p)
		}
	}
	return live
}

func noRestarts(t *testing.T, components ...string) {
	t.Helper()
	for _, c := range components {
		for _, p := range podsOf(t, c) {
			if p.Restarts != 0 {
				t.Errorf("pod %s restarted %d times", p.Name, p.Restarts)
			}
		}
	}
}

func rolledOut(t *testing.T, deployment string) {
	t.Helper()
	kubectlRun(t, "-n", namespace, "rollout", "status", "deployment/"+fullname()+"-"+deployment, "--timeout=240s")
}

// TestRollingRestartUnderLoad: GetUser and Login at a constant rate while
// both Deployments are restarted, one after the other. Promise: no failed
// call, no container restart.
func TestRollingRestartUnderLoad(t *testing.T) {
	lg := startLoadgen(t, "e2e-rolling", "-rate", "40", "-duration", "120s", "-login-every", "10")
	lg.waitWarm()
	t.Cleanup(func() { reconnect(t) })
	for _, d := range []string{"user", "auth"} {
		start := time.Now()
		kubectlRun(t, "-n", namespace, "rollout", "restart", "deployment/"+fullname()+"-"+d)
		rolledOut(t, d)
		t.Logf("rollout restart of %s: %s", d, time.Since(start).Round(time.Second))
	}
	var r steadyReport
	lg.report(3*time.Minute, &r)
	t.Logf("rolling restart of both services under load: %s", r)
	if r.Failed != 0 {
		t.Errorf("%d calls failed during the rollouts, want 0: %v", r.Failed, r.FirstErrors)
	}
	if r.Sent < r.Planned*9/10 {
		t.Errorf("sent %d of %d planned calls", r.Sent, r.Planned)
	}
	noRestarts(t, "user", "auth")
}

// TestRefreshStormAcrossReplicas: many clients present the same refresh
// token at once, spread over both Auth replicas on PostgreSQL. Promise:
// exactly one rotation wins each race, reuse detection then revokes the
// family, and the database never holds two active tokens of one family.
func TestRefreshStormAcrossReplicas(t *testing.T) {
	const steps, clients = 20, 20
	email := unique("storm")
	lg := startLoadgen(t, "e2e-storm", "-scenario", "refresh-storm", "-email", email,
		"-clients", fmt.Sprint(clients), "-steps", fmt.Sprint(steps))
	var r struct {
		Steps []struct {
			OK                 int            `json:"ok"`
			Codes              map[string]int `json:"codes"`
			WinnerRefusedAfter bool           `json:"winner_refused_after"`
			LoginError         string         `json:"login_error"`
		} `json:"steps"`
		StepsExactlyOneOK  int      `json:"steps_exactly_one_ok"`
		StepsWinnerRefused int      `json:"steps_winner_refused"`
		FirstErrors        []string `json:"first_errors"`
	}
	lg.report(3*time.Minute, &r)
	t.Logf("refresh storm: %d steps x %d clients over both Auth replicas: exactly one winner in %d, family revoked after in %d, other errors %v",
		len(r.Steps), clients, r.StepsExactlyOneOK, r.StepsWinnerRefused, r.FirstErrors)
	if len(r.Steps) != steps || r.StepsExactlyOneOK != steps || r.StepsWinnerRefused != steps || len(r.FirstErrors) != 0 {
		t.Errorf("steps %+v", r.Steps)
	}

	// In the database: every raced family holds exactly two tokens (the
	// one presented, rotated, and the winner's) and is revoked; no family
	// anywhere has two current tokens.
	userID := psql(t, "gatehouse_user", fmt.Sprintf(`SELECT id FROM users WHERE lower(email) = lower('%s')`, email))
	if userID == "" {
		t.Fatalf("user %s not in the database", email)
	}
	families := psql(t, "gatehouse_auth", fmt.Sprintf(`
		SELECT count(*) FILTER (WHERE n = 2 AND revoked), count(*) FILTER (WHERE n > 2), count(*) FILTER (WHERE current > 1)
		FROM (SELECT f.id, count(*) AS n, count(*) FILTER (WHERE t.rotated_at IS NULL) AS current, f.revoked_at IS NOT NULL AS revoked
		      FROM refresh_families f JOIN refresh_tokens t ON t.family_id = f.id WHERE f.user_id = '%s' GROUP BY f.id) per`, userID))
	var raced, extra, twoCurrent int
	if _, err := fmt.Sscanf(families, "%d|%d|%d", &raced, &extra, &twoCurrent); err != nil {
		t.Fatalf("psql answered %q: %v", families, err)
	}
	dupes := psql(t, "gatehouse_auth", `SELECT count(*) FROM (SELECT family_id FROM refresh_tokens WHERE rotated_at IS NULL GROUP BY family_id HAVING count(*) > 1) d`)
	t.Logf("database: %d raced families with exactly 2 tokens and revoked, %d with more, %d with two current tokens; families with duplicate current tokens overall: %s", raced, extra, twoCurrent, dupes)
	if raced != steps || extra != 0 || twoCurrent != 0 || dupes != "0" {
		t.Errorf("database after the storm: want %d raced families, 0 with more tokens, 0 duplicates", steps)
	}
}

// TestRefreshRateAcrossReplicas: 16 clients, each refreshing its own
// session back to back for 20 s through the Services of both Auth and
// both User replicas on PostgreSQL (each refresh is a rotation in the Auth
// database and a session check against the User service). Promise: every
// refresh succeeds; the rate and latency are logged, figures for the
// README's performance section, not a gate (timings are not tests).
func TestRefreshRateAcrossReplicas(t *testing.T) {
	lg := startLoadgen(t, "e2e-refresh-rate", "-scenario", "refresh-rate", "-email", unique("rotate"),
		"-clients", "16", "-duration", "20s")
	var r struct {
		OK          int            `json:"ok"`
		Codes       map[string]int `json:"codes"`
		PerSecond   float64        `json:"per_second"`
		P50ms       float64        `json:"p50_ms"`
		P99ms       float64        `json:"p99_ms"`
		FirstErrors []string       `json:"first_errors"`
		LoginError  string         `json:"login_error"`
	}
	lg.report(3*time.Minute, &r)
	t.Logf("RefreshToken, 16 clients over 2 Auth and 2 User replicas on PostgreSQL: %d refreshes, %.1f/s, p50 %.2f ms, p99 %.2f ms, failures %v",
		r.OK, r.PerSecond, r.P50ms, r.P99ms, r.Codes)
	if r.LoginError != "" || len(r.Codes) != 0 || r.OK == 0 {
		t.Errorf("login error %q, failures %v %v, %d refreshes", r.LoginError, r.Codes, r.FirstErrors, r.OK)
	}
}

// psql runs one query as the superuser of the bundled PostgreSQL and
// returns its unaligned, tuples-only answer.
func psql(t *testing.T, db, query string) string {
	t.Helper()
	return strings.TrimSpace(kubectlRun(t, "-n", namespace, "exec", fullname()+"-postgresql-0", "--",
		"psql", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-tAc", query))
}

// TestPodDeletionUnderLoad: one pod of each service deleted under load
// (a node drain, an eviction). Promise: at most 0.1% of calls fail.
func TestPodDeletionUnderLoad(t *testing.T) {
	lg := startLoadgen(t, "e2e-delete", "-rate", "40", "-duration", "75s")
	lg.waitWarm()
	t.Cleanup(func() { reconnect(t) })
	for _, c := range []string{"user", "auth"} {
		victim := podsOf(t, c)[0].Name
		kubectlRun(t, "-n", namespace, "delete", "pod", victim, "--wait=false")
		time.Sleep(2 * time.Second) // let the Deployment notice before asking it
		rolledOut(t, c)
		t.Logf("deleted %s; %s back to 2 ready pods", victim, c)
	}
	var r steadyReport
	lg.report(3*time.Minute, &r)
	t.Logf("one pod of each service deleted under load: %s", r)
	if budget := r.Sent / 1000; r.Failed > budget {
		t.Errorf("%d calls failed, over the 0.1%% budget (%d of %d): %v", r.Failed, budget, r.Sent, r.FirstErrors)
	}
	noRestarts(t, "user", "auth")
}

// TestPostgresRestartUnderLoad: PostgreSQL is stopped under load (its
// StatefulSet scaled to 0: a pod delete alone is back within seconds,
// before anything can be observed) and started again. Promise: the
// services report NOT_SERVING (readiness) and answer Unavailable while it
// is gone, recover by themselves without a restart, and every user created
// before is still there with the same fields. Alert: GatehouseNotReady
// becomes active for the User pods, with no call needed to reach them.
func TestPostgresRestartUnderLoad(t *testing.T) {
	prom := forwardFor(t, monitoring, prometheusService, 9090)
	type saved struct{ id, token, email, name, created string }
	var users []saved
	for i := range 5 {
		email, pw := unique(fmt.Sprintf("pg%d", i)), "survives a restart"
		id := signup(t, email, pw)
		access, _ := login(t, email, pw)
		got, code := call(t, userAddr, "user.v1.UserService/GetUser", access, map[string]string{"id": id})
		must(t, got, code, "OK")
		users = append(users, saved{id, access, email, str(got, "user", "displayName"), str(got, "user", "createTime")})
	}

	lg := startLoadgen(t, "e2e-postgres", "-rate", "20", "-duration", "90s")
	lg.waitWarm()
	start := time.Now()
	pg := "statefulset/" + fullname() + "-postgresql"
	kubectlRun(t, "-n", namespace, "scale", pg, "--replicas=0")
	restarted := false
	restart := func() {
		if !restarted {
			restarted = true
			kubectlRun(t, "-n", namespace, "scale", pg, "--replicas=1")
		}
	}
	t.Cleanup(restart)

	eventually(t, 2*time.Minute, "a User pod reports not ready (readiness follows the database)", func() error {
		for _, p := range podsOf(t, "user") {
			if !p.Ready {
				return nil
			}
		}
		return fmt.Errorf("every User pod still ready")
	})
	alertActive(t, prom, "GatehouseNotReady", map[string]string{"namespace": namespace, "job": "gatehouse-user"})
	eventually(t, 2*time.Minute, "CreateUser answers Unavailable while the database is gone", func() error {
		_, code := call(t, userAddr, "user.v1.UserService/CreateUser", "", map[string]string{"email": unique("outage"), "password": "never stored anywhere", "display_name": "x"})
		if code != "Unavailable" {
			return fmt.Errorf("CreateUser: %s", code)
		}
		return nil
	})
	outage := time.Since(start)
	restart()
	kubectlRun(t, "-n", namespace, "rollout", "status", pg, "--timeout=180s")
	eventually(t, 3*time.Minute, "both services ready again", func() error {
		for _, c := range []string{"user", "auth"} {
			for _, p := range podsOf(t, c) {
				if !p.Ready {
					return fmt.Errorf("pod %s not ready", p.Name)
				}
			}
		}
		return nil
	})
	t.Logf("PostgreSQL stopped: a User pod unready and CreateUser Unavailable within %s; started again, services ready %s after the stop",
		outage.Round(time.Second), time.Since(start).Round(time.Second))
	noRestarts(t, "user", "auth")

	for _, u := range users {
		got, code := call(t, userAddr, "user.v1.UserService/GetUser", u.token, map[string]string{"id": u.id})
		must(t, got, code, "OK")
		if str(got, "user", "email") != u.email || str(got, "user", "displayName") != u.name || str(got, "user", "createTime") != u.created {
			t.Errorf("user %s after the restart = %v, want email %s, name %s, created %s", u.id, got, u.email, u.name, u.created)
		}
	}

	var r steadyReport
	lg.report(3*time.Minute, &r)
	t.Logf("PostgreSQL restarted under load: %s; failures by code: GetUser %v, Login %v", r, r.ByMethod["GetUser"].Codes, r.ByMethod["Login"].Codes)
	for m, mr := range r.ByMethod {
		for code, n := range mr.Codes {
			if code != "OK" && code != "Unavailable" {
				t.Errorf("%s: %d calls answered %s; during a database outage only Unavailable is right", m, n, code)
			}
		}
	}
	if t.Failed() {
		t.Logf("first failures of each method and code:\n  %s", strings.Join(r.FirstErrors, "\n  "))
	}
}

// TestAuthDownUserKeepsServing: the Auth service scaled to zero. Promise:
// the User service keeps accepting the tokens it already verified (its
// key set and token cache need no Auth), and Login fails with Unavailable.
// Alerts: GatehouseTargetsAbsent for the Auth job (its up series vanish, so
// GatehouseTargetDown cannot fire) and GatehouseJWKSFetchFailing for the
// User pods, which can no longer fetch the issuer's JWKS.
func TestAuthDownUserKeepsServing(t *testing.T) {
	prom := forwardFor(t, monitoring, prometheusService, 9090)
	// absent() sees every namespace: another release's Auth targets (make
	// kind-smoke's) would keep it quiet.
	others, err := scalar(prom, fmt.Sprintf(`count(up{job="gatehouse-auth", namespace!=%q})`, namespace))
	if err != nil {
		t.Fatal(err)
	}
	email, pw := unique("authdown"), "auth is down"
	id := signup(t, email, pw)
	access, _ := login(t, email, pw)
	got, code := call(t, userAddr, "user.v1.UserService/GetUser", access, map[string]string{"id": id})
	must(t, got, code, "OK")

	auth := "deployment/" + fullname() + "-auth"
	replicas := strings.TrimSpace(kubectlRun(t, "-n", namespace, "get", auth, "-o", "jsonpath={.spec.replicas}"))
	t.Cleanup(func() {
		kubectlRun(t, "-n", namespace, "scale", auth, "--replicas="+replicas)
		rolledOut(t, "auth")
		reconnect(t)
	})
	kubectlRun(t, "-n", namespace, "scale", auth, "--replicas=0")
	eventually(t, 2*time.Minute, "no Auth pod left", func() error {
		if p := podsOf(t, "auth"); len(p) > 0 {
			return fmt.Errorf("%d Auth pods", len(p))
		}
		return nil
	})
	alertActive(t, prom, "GatehouseJWKSFetchFailing", map[string]string{"namespace": namespace, "job": "gatehouse-user"})
	if others == 0 {
		alertActive(t, prom, "GatehouseTargetsAbsent", map[string]string{"job": "gatehouse-auth"})
	} else {
		t.Logf("GatehouseTargetsAbsent not checked: %v Auth targets of other releases are up", others)
	}
	for range 5 {
		got, code := call(t, userAddr, "user.v1.UserService/GetUser", access, map[string]string{"id": id})
		if must(t, got, code, "OK"); str(got, "user", "email") != email {
			t.Fatalf("GetUser = %v", got)
		}
		time.Sleep(time.Second)
	}
	var probe struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	startLoadgen(t, "e2e-authdown", "-scenario", "probe", "-email", email, "-password", pw).report(2*time.Minute, &probe)
	t.Logf("Auth at 0 replicas: GetUser with a held token OK 5/5; Login from inside the cluster: %s (%s)", probe.Code, probe.Message)
	if probe.Code != "Unavailable" {
		t.Errorf("Login with the Auth service down = %s, want Unavailable", probe.Code)
	}
}

// kidOf reads the kid from a JWT's header (no verification: the services
// do that).
func kidOf(t *testing.T, token string) string {
	t.Helper()
	header, _, ok := strings.Cut(token, ".")
	if !ok {
		t.Fatalf("not a JWT: %.40q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

// helmUpgrade changes the release's values, keeping the rest as deployed:
// the same chart too, the work tree's or the released one make deploy
// installed from a registry (CHART in the file make kind-load writes).
func helmUpgrade(t *testing.T, sets ...string) {
	t.Helper()
	chart := []string{filepath.Join("..", "..", "charts", "gatehouse")}
	if ref := optionalFromEnv(t, "CHART"); ref != "" {
		chart = []string{ref, "--version", optionalFromEnv(t, "CHART_VERSION")}
		if strings.HasPrefix(ref, "oci://localhost:") || strings.HasPrefix(ref, "oci://127.0.0.1:") {
			chart = append(chart, "--plain-http")
		}
	}
	args := append([]string{"upgrade", release}, chart...)
	args = append(args, "-n", namespace, "--reuse-values", "--wait", "--timeout", "5m")
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	if out, err := exec.Command(helm, args...).CombinedOutput(); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestKeyRotation rotates the signing key the way the chart documents: add
// a key, let every verifier learn it, make it active, then remove the old
// one. Promise: tokens
// issued before keep validating until their key is removed, new tokens
// carry the new kid, the User service learns the new key without a
// restart, and no call of a client holding fresh tokens fails meanwhile.
func TestKeyRotation(t *testing.T) {
	email, pw := unique("rotate"), "keys come and go"
	id := signup(t, email, pw)
	oldToken, _ := login(t, email, pw)
	oldKid := kidOf(t, oldToken)
	newKid := fmt.Sprintf("e2e-%d", time.Now().Unix())
	userPods := podsOf(t, "user")

	lg := startLoadgen(t, "e2e-rotation", "-rate", "20", "-duration", "180s")
	lg.waitWarm()
	t.Cleanup(func() { reconnect(t) })

	// 1. Publish the new key. Verifiers learn it from the JWKS within their
	// refresh interval (values-e2e.yaml: 20s), before any token uses it, so
	// no verifier meets an unknown kid while Auth pods roll.
	start := time.Now()
	helmUpgrade(t, "auth.keys.ids={"+oldKid+","+newKid+"}", "auth.keys.activeKeyId="+oldKid)
	time.Sleep(30 * time.Second)
	// 2. Sign with it.
	helmUpgrade(t, "auth.keys.activeKeyId="+newKid)
	reconnect(t)
	var newToken string
	eventually(t, 3*time.Minute, "new tokens carry the new kid", func() error {
		newToken, _ = login(t, email, pw)
		if k := kidOf(t, newToken); k != newKid {
			return fmt.Errorf("kid %s", k)
		}
		return nil
	})
	t.Logf("%s active after %s", newKid, time.Since(start).Round(time.Second))
	for name, tok := range map[string]string{"issued before (" + oldKid + ")": oldToken, "issued after (" + newKid + ")": newToken} {
		got, code := call(t, userAddr, "user.v1.UserService/GetUser", tok, map[string]string{"id": id})
		if code != "OK" {
			t.Errorf("GetUser with the token %s: %s", name, code)
		} else if str(got, "user", "id") != id {
			t.Errorf("GetUser = %v", got)
		}
	}

	// 3. Remove the old key (in production: once its last token expired).
	start = time.Now()
	helmUpgrade(t, "auth.keys.ids={"+newKid+"}", "auth.keys.activeKeyId="+newKid)
	reconnect(t)
	eventually(t, 3*time.Minute, "tokens of the removed key refused", func() error {
		_, code := call(t, userAddr, "user.v1.UserService/GetUser", oldToken, map[string]string{"id": id})
		if code != "Unauthenticated" {
			return fmt.Errorf("GetUser with the %s token: %s", oldKid, code)
		}
		return nil
	})
	t.Logf("%s removed; its tokens refused after %s", oldKid, time.Since(start).Round(time.Second))
	got, code := call(t, userAddr, "user.v1.UserService/GetUser", newToken, map[string]string{"id": id})
	must(t, got, code, "OK")

	after := podsOf(t, "user")
	if fmt.Sprint(after) != fmt.Sprint(userPods) {
		t.Errorf("User pods changed during the rotation: %v -> %v (the key must be learnt without a restart)", userPods, after)
	}
	var r steadyReport
	lg.report(4*time.Minute, &r)
	t.Logf("key rotation under load: %s", r)
	if r.Failed != 0 {
		t.Errorf("%d calls of a client holding fresh tokens failed during the rotation: %v", r.Failed, r.FirstErrors)
	}
}
