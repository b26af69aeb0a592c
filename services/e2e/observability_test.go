//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Prometheus of hack/kind/deploy.sh: the operator's governing Service
// of every Prometheus in the namespace.
const prometheusService = "svc/prometheus-operated"

var jobs = []string{"gatehouse-user", "gatehouse-auth"}

// getJSON GETs base+path and decodes the JSON answer into v.
func getJSON(base, path string, v any) error {
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + base + path)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %.300s", path, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// eventually retries check every 2 s until it returns nil or timeout
// passes, and then fails the test with the last error.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, timeout, err)
		}
		time.Sleep(2 * time.Second)
	}
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) float() float64 {
	str, _ := s.Value[1].(string)
	f, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// query runs an instant PromQL query and returns its vector.
func query(prom, q string) ([]promSample, error) {
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(prom, "/api/v1/query?query="+url.QueryEscape(q), &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", q, r.Data.ResultType)
	}
	return r.Data.Result, nil
}

// scalar runs a query that sums to at most one sample; no sample is 0.
func scalar(prom, q string) (float64, error) {
	v, err := query(prom, q)
	if err != nil || len(v) == 0 {
		return 0, err
	}
	if len(v) > 1 {
		return 0, fmt.Errorf("query %s: %d samples, want 1", q, len(v))
	}
	return v[0].float(), nil
}

// alertActive waits until one of the chart's alerts is pending or firing
// with the given labels: its expression holds for the condition the test
// created. Waiting out each rule's `for` (2 to 10 minutes) is left to the
// promtool unit tests (make chart-test), which also check the annotations.
func alertActive(t *testing.T, prom, name string, labels map[string]string) {
	t.Helper()
	sel := fmt.Sprintf(`ALERTS{alertname=%q, alertstate=~"pending|firing"`, name)
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sel += fmt.Sprintf(`, %s=%q`, k, labels[k])
	}
	sel += "}"
	start := time.Now()
	eventually(t, 3*time.Minute, name+" pending or firing", func() error {
		v, err := query(prom, sel)
		if err != nil {
			return err
		}
		if len(v) == 0 {
			return fmt.Errorf("no %s", sel)
		}
		t.Logf("alert %s %s %s after the condition began: %v", name, v[0].Metric["alertstate"], time.Since(start).Round(time.Second), v[0].Metric)
		return nil
	})
}

// TestPrometheusScrapesBothServices: the chart's ServiceMonitor makes the
// Prometheus Operator's Prometheus scrape every pod of both services, and
// the calls made here show up in grpc_server_handled_total on both sides
// (Login on the Auth service, the VerifyPassword it makes on the User service).
func TestPrometheusScrapesBothServices(t *testing.T) {
	prom := forwardFor(t, monitoring, prometheusService, 9090)

	eventually(t, 2*time.Minute, "targets of both services up", func() error {
		var r struct {
			Data struct {
				ActiveTargets []struct {
					ScrapePool string            `json:"scrapePool"`
					Labels     map[string]string `json:"labels"`
					Health     string            `json:"health"`
					LastError  string            `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if err := getJSON(prom, "/api/v1/targets?state=active", &r); err != nil {
			return err
		}
		up := map[string]int{}
		for _, tg := range r.Data.ActiveTargets {
			if tg.Labels["namespace"] != namespace || !slices.Contains(jobs, tg.Labels["job"]) {
				continue
			}
			if !strings.HasPrefix(tg.ScrapePool, "serviceMonitor/"+namespace+"/") {
				return fmt.Errorf("target %s of job %s comes from scrape pool %q, not the chart's ServiceMonitor", tg.Labels["pod"], tg.Labels["job"], tg.ScrapePool)
			}
			if tg.Health != "up" {
				return fmt.Errorf("target %s (%s) is %s: %s", tg.Labels["pod"], tg.Labels["job"], tg.Health, tg.LastError)
			}
			up[tg.Labels["job"]]++
		}
		for _, j := range jobs {
			if up[j] != 2 {
				return fmt.Errorf("%d targets up for job %s, want 2 (one per replica); all: %v", up[j], j, up)
			}
		}
		t.Logf("targets up: %v", up)
		return nil
	})

	const calls = 3
	loginQ := fmt.Sprintf(`sum(grpc_server_handled_total{namespace=%q, job="gatehouse-auth", grpc_method="Login", grpc_code="OK"})`, namespace)
	verifyQ := fmt.Sprintf(`sum(grpc_server_handled_total{namespace=%q, job="gatehouse-user", grpc_method="VerifyPassword", grpc_code="OK"})`, namespace)
	// Settle first: a Login made by an earlier test may not be scraped yet.
	time.Sleep(12 * time.Second)
	loginsBefore, err := scalar(prom, loginQ)
	if err != nil {
		t.Fatal(err)
	}
	verifiesBefore, err := scalar(prom, verifyQ)
	if err != nil {
		t.Fatal(err)
	}
	email, pw := unique("prom"), "prometheus scrapes"
	signup(t, email, pw)
	for range calls {
		login(t, email, pw)
	}
	eventually(t, time.Minute, "grpc_server_handled_total counts the logins", func() error {
		logins, err := scalar(prom, loginQ)
		if err != nil {
			return err
		}
		verifies, err := scalar(prom, verifyQ)
		if err != nil {
			return err
		}
		if logins < loginsBefore+calls || verifies < verifiesBefore+calls {
			return fmt.Errorf("Login OK %v -> %v, VerifyPassword OK %v -> %v; want both to grow by %d", loginsBefore, logins, verifiesBefore, verifies, calls)
		}
		t.Logf("grpc_server_handled_total: Login OK %v -> %v, VerifyPassword OK %v -> %v", loginsBefore, logins, verifiesBefore, verifies)
		return nil
	})
}

// TestSoftMemoryLimitFollowsTheContainer: every pod's Go runtime runs with
// 90% of its container's memory limit as its soft limit
// (go_gc_gomemlimit_bytes), which the service reads from its own cgroup:
// the chart passes no GOMEMLIMIT, and the rest of the limit is left for
// memory the runtime does not count.
func TestSoftMemoryLimitFollowsTheContainer(t *testing.T) {
	prom := forwardFor(t, monitoring, prometheusService, 9090)
	for _, svc := range []string{"user", "auth"} {
		limit := memoryLimit(t, svc)
		// The kernel rounds memory.max down to a whole page (4 KiB, up
		// to 64 KiB on some arm64 kernels): a limit that is not a
		// multiple of one gives a little less.
		hi, lo := math.Floor(limit*0.9), math.Floor((limit-64<<10)*0.9)
		replicas, err := strconv.Atoi(strings.TrimSpace(kubectlRun(t, "-n", namespace, "get", "deployment",
			fullname()+"-"+svc, "-o", "jsonpath={.spec.replicas}")))
		if err != nil {
			t.Fatalf("deployment %s-%s: replicas: %v", fullname(), svc, err)
		}
		q := fmt.Sprintf(`go_gc_gomemlimit_bytes{namespace=%q, job="gatehouse-%s"}`, namespace, svc)
		eventually(t, 2*time.Minute, "go_gc_gomemlimit_bytes of every "+svc+" pod", func() error {
			v, err := query(prom, q)
			if err != nil {
				return err
			}
			pods := map[string]bool{}
			for _, s := range v {
				if got := s.float(); got < lo || got > hi {
					return fmt.Errorf("pod %s: soft memory limit %.0f bytes, want 90%% of the container's %.0f: %.0f (%.0f with the limit rounded to pages)", s.Metric["pod"], got, limit, hi, lo)
				}
				pods[s.Metric["pod"]] = true
			}
			if len(pods) != replicas {
				return fmt.Errorf("%d pods report go_gc_gomemlimit_bytes, want %d (one per replica): %v", len(pods), replicas, pods)
			}
			t.Logf("%s: soft memory limit 90%% of the container's %.0f bytes in all %d pods", svc, limit, replicas)
			return nil
		})
	}
}

// TestPrometheusRulesLoaded: every alert of the chart's rule file is loaded
// from the PrometheusRule and evaluates without error.
func TestPrometheusRulesLoaded(t *testing.T) {
	prom := forwardFor(t, monitoring, prometheusService, 9090)
	rulesFile, err := os.ReadFile(filepath.Join("..", "..", "charts", "gatehouse", "files", "prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert:\s*(\S+)`).FindAllStringSubmatch(string(rulesFile), -1) {
		want = append(want, m[1])
	}
	if len(want) == 0 {
		t.Fatal("no alerts found in prometheus-rules.yaml")
	}
	sort.Strings(want)

	eventually(t, 2*time.Minute, "the PrometheusRule's alerts loaded and evaluated", func() error {
		var r struct {
			Data struct {
				Groups []struct {
					Name  string `json:"name"`
					File  string `json:"file"`
					Rules []struct {
						Name           string `json:"name"`
						Type           string `json:"type"`
						Health         string `json:"health"`
						LastError      string `json:"lastError"`
						LastEvaluation string `json:"lastEvaluation"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := getJSON(prom, "/api/v1/rules?type=alert", &r); err != nil {
			return err
		}
		var got []string
		for _, g := range r.Data.Groups {
			// The operator names rule files <namespace>-<PrometheusRule name>-<uid>.yaml.
			if !strings.Contains(filepath.Base(g.File), namespace+"-"+fullname()) {
				continue
			}
			for _, rule := range g.Rules {
				if rule.Health != "ok" || strings.HasPrefix(rule.LastEvaluation, "0001-") {
					return fmt.Errorf("alert %s: health %q, last evaluation %s, error %q", rule.Name, rule.Health, rule.LastEvaluation, rule.LastError)
				}
				got = append(got, rule.Name)
			}
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("alerts loaded from the PrometheusRule = %v, want %v", got, want)
		}
		t.Logf("%d alerts loaded and evaluated: %v", len(got), got)
		return nil
	})
}

// TestDashboardQueriesReturnData runs every PromQL expression of the
// chart's Grafana dashboards, with the dashboards' variables filled in as
// Grafana would, and wants each to return at least one finite sample.
func TestDashboardQueriesReturnData(t *testing.T) {
	prom := forwardFor(t, monitoring, prometheusService, 9090)
	files, err := filepath.Glob(filepath.Join("..", "..", "charts", "gatehouse", "files", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	vars := strings.NewReplacer(
		"$namespace", namespace,
		"$job", "gatehouse-(user|auth)",
		"$__rate_interval", "2m",
	)
	type panelQuery struct{ dashboard, expr string }
	var queries []panelQuery
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, e := range exprs(doc) {
			queries = append(queries, panelQuery{filepath.Base(f), vars.Replace(e)})
		}
	}

	// Traffic of every kind the panels show, inside the rate window: logins
	// good and bad, a token check, a refresh and a refresh-token reuse. Made
	// again on every attempt, so the window never runs dry while waiting.
	email, pw := unique("dash"), "dashboards have data"
	id := signup(t, email, pw)
	traffic := func() {
		access, refresh := login(t, email, pw)
		_, code := call(t, authAddr, "auth.v1.AuthService/Login", "", map[string]string{"email": email, "password": "wrong password"})
		must(t, nil, code, "Unauthenticated")
		resp, code := call(t, userAddr, "user.v1.UserService/GetUser", access, map[string]string{"id": id})
		must(t, resp, code, "OK")
		resp, code = call(t, authAddr, "auth.v1.AuthService/RefreshToken", "", map[string]string{"refresh_token": refresh})
		must(t, resp, code, "OK")
		_, code = call(t, authAddr, "auth.v1.AuthService/RefreshToken", "", map[string]string{"refresh_token": refresh})
		must(t, nil, code, "Unauthenticated")
	}

	t.Logf("%d expressions in %d dashboards", len(queries), len(files))
	eventually(t, 2*time.Minute, "every dashboard expression returns data", func() error {
		traffic()
		var empty []string
		for _, q := range queries {
			v, err := query(prom, q.expr)
			if err != nil {
				return fmt.Errorf("%s: %w", q.dashboard, err)
			}
			if !slices.ContainsFunc(v, func(s promSample) bool { f := s.float(); return !math.IsNaN(f) && !math.IsInf(f, 0) }) {
				empty = append(empty, fmt.Sprintf("%s: %s (%d samples, none finite)", q.dashboard, q.expr, len(v)))
			}
		}
		if len(empty) > 0 {
			return fmt.Errorf("%d of %d expressions without data:\n  %s", len(empty), len(queries), strings.Join(empty, "\n  "))
		}
		return nil
	})
}

// exprs collects every "expr" string of a Grafana dashboard's JSON.
func exprs(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		if e, ok := x["expr"].(string); ok && e != "" {
			out = append(out, e)
		}
		for _, c := range x {
			out = append(out, exprs(c)...)
		}
	case []any:
		for _, c := range x {
			out = append(out, exprs(c)...)
		}
	}
	return out
}

// TestJaegerTraceSpansBothServices: a Login made with a W3C traceparent of
// our own is one trace in Jaeger holding the Auth service's Login span and,
// as its descendant, the User service's VerifyPassword span.
func TestJaegerTraceSpansBothServices(t *testing.T) {
	jaeger := forwardFor(t, namespace, "svc/"+fullname()+"-jaeger", 16686)
	traceID, parentID := randomHex(t, 16), randomHex(t, 8)

	email, pw := unique("trace"), "traced login"
	signup(t, email, pw)
	resp, code := call(t, authAddr, "auth.v1.AuthService/Login", "", map[string]string{"email": email, "password": pw},
		"traceparent: 00-"+traceID+"-"+parentID+"-01")
	must(t, resp, code, "OK")

	eventually(t, time.Minute, "the Login trace in Jaeger", func() error {
		var r struct {
			Data []struct {
				TraceID   string       `json:"traceID"`
				Spans     []jaegerSpan `json:"spans"`
				Processes map[string]struct {
					ServiceName string `json:"serviceName"`
				} `json:"processes"`
			} `json:"data"`
		}
		if err := getJSON(jaeger, "/api/traces/"+traceID, &r); err != nil {
			return err
		}
		if len(r.Data) != 1 || r.Data[0].TraceID != traceID {
			return fmt.Errorf("%d traces for id %s", len(r.Data), traceID)
		}
		tr := r.Data[0]
		byID := map[string]jaegerSpan{}
		var login, verify *jaegerSpan
		var list []string
		for i, s := range tr.Spans {
			byID[s.SpanID] = s
			svc := tr.Processes[s.ProcessID].ServiceName
			list = append(list, svc+" "+s.OperationName)
			kind := s.tag("span.kind")
			switch {
			case svc == "gatehouse-auth" && s.OperationName == "auth.v1.AuthService/Login" && kind == "server":
				login = &tr.Spans[i]
			case svc == "gatehouse-user" && s.OperationName == "user.v1.UserService/VerifyPassword" && kind == "server":
				verify = &tr.Spans[i]
			}
		}
		sort.Strings(list)
		if login == nil || verify == nil {
			return fmt.Errorf("spans %v: want the Auth service's Login server span and the User service's VerifyPassword server span", list)
		}
		if !login.childOf(parentID) {
			return fmt.Errorf("the Login span's parent is not our traceparent's span %s", parentID)
		}
		// Walk up from VerifyPassword: it must reach the Login span.
		for s, hops := *verify, 0; ; hops++ {
			if s.SpanID == login.SpanID {
				break
			}
			if len(s.References) == 0 || hops > 10 {
				return fmt.Errorf("VerifyPassword span %s does not descend from the Login span %s (spans %v)", verify.SpanID, login.SpanID, list)
			}
			s = byID[s.References[0].SpanID]
		}
		t.Logf("trace %s: %d spans: %s", traceID, len(tr.Spans), strings.Join(list, ", "))
		return nil
	})
}

// jaegerSpan is a span of Jaeger's query API (/api/traces/{id}).
type jaegerSpan struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

func (s jaegerSpan) tag(key string) string {
	for _, t := range s.Tags {
		if t.Key == key {
			v, _ := t.Value.(string)
			return v
		}
	}
	return ""
}

func (s jaegerSpan) childOf(parent string) bool {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" && r.SpanID == parent {
			return true
		}
	}
	return false
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
