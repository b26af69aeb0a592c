package validate

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

// promtool returns promtool's path, or skips the test when it is missing,
// unless GATEHOUSE_REQUIRE_PROMTOOL=1 (CI) makes that a failure.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := Promtool()
	if err == nil {
		return p
	}
	msg := "promtool not found (apt-get install prometheus, or set PROMTOOL): " + err.Error()
	if os.Getenv("GATEHOUSE_REQUIRE_PROMTOOL") == "1" {
		t.Fatal(msg + "; GATEHOUSE_REQUIRE_PROMTOOL=1 makes this a failure")
	}
	t.Skip(msg)
	return ""
}

func chartRulesFile(t *testing.T) string {
	t.Helper()
	f := filepath.Join(chartDir(t), "files", "prometheus-rules.yaml")
	if _, err := os.Stat(f); err != nil {
		t.Fatalf("the chart's alert rules are missing: %v", err)
	}
	return f
}

// plainRuleFile writes the rule groups of file (a Prometheus rule file or a
// PrometheusRule) as a Prometheus rule file promtool reads, and checks them
// against the prometheus-operator's types on the way.
func plainRuleFile(t *testing.T, file string) string {
	t.Helper()
	groups, err := PrometheusRuleGroups(file)
	if err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	var spec monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(b, &spec); err != nil {
		t.Errorf("%s: not a valid PrometheusRule spec: %v", file, err)
	}
	out := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestChartPrometheusRules: `promtool check rules` on the chart's rules and
// `promtool test rules` on their unit tests (prometheus-rules.test.yaml).
func TestChartPrometheusRules(t *testing.T) {
	rules := chartRulesFile(t)
	plain := plainRuleFile(t, rules)
	tool := promtool(t)
	if out, err := RunPromtool(tool, filepath.Dir(plain), "check", "rules", plain); err != nil {
		t.Errorf("promtool check rules %s: %v\n%s", rules, err, out)
	}
	tests := strings.TrimSuffix(rules, ".yaml") + ".test.yaml"
	if _, err := os.Stat(tests); err != nil {
		t.Logf("no %s: alert rules without unit tests", filepath.Base(tests))
		return
	}
	// The tests name the rule file relative to their own directory.
	if out, err := RunPromtool(tool, filepath.Dir(tests), "test", "rules", filepath.Base(tests)); err != nil {
		t.Errorf("promtool test rules %s: %v\n%s", tests, err, out)
	} else {
		t.Logf("promtool test rules: %s", firstLine(out, 4))
	}
}

var updateRules = flag.Bool("update-rules", false,
	"rewrite k8s/components/monitoring/prometheus-rules.yaml from charts/gatehouse/files/prometheus-rules.yaml")

// componentRulesHeader starts the kustomize component's PrometheusRule; the
// chart's rule file follows, indented under spec.
const componentRulesHeader = `# GENERATED from charts/gatehouse/files/prometheus-rules.yaml: do not edit by hand.
# kustomize cannot read files outside k8s/ (load restrictor), so the rule
# groups are copied here. To update after changing the chart's rules:
#   cd hack/validate && go test -run TestKustomizeRulesMatchChart -update-rules
# hack/validate fails while the two differ.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: gatehouse
  labels:
    app.kubernetes.io/name: gatehouse
spec:
`

// TestKustomizeRulesMatchChart: kustomize cannot read the chart's files (its
// load restrictor keeps it inside k8s/), so k8s/components/monitoring holds
// a copy of the rule groups; this keeps the copy exact.
func TestKustomizeRulesMatchChart(t *testing.T) {
	component := filepath.Join(repoRoot(t), "k8s", "components", "monitoring", "prometheus-rules.yaml")
	chartRules := chartRulesFile(t)
	if *updateRules {
		b, err := os.ReadFile(chartRules)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		out.WriteString(componentRulesHeader)
		for _, line := range strings.SplitAfter(string(b), "\n") {
			if strings.TrimSpace(line) != "" {
				out.WriteString("  ")
			}
			out.WriteString(line)
		}
		if err := os.WriteFile(component, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", component)
	}
	want, err := PrometheusRuleGroups(chartRules)
	if err != nil {
		t.Fatal(err)
	}
	got, err := PrometheusRuleGroups(component)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s's groups differ from charts/gatehouse/files/prometheus-rules.yaml (-chart +kustomize); "+
			"run: go test -run TestKustomizeRulesMatchChart -update-rules\n%s", component, d)
	}
}

// TestDashboards: every dashboard is valid JSON with a title and a unique
// uid, and every PromQL expression in it parses (promtool check rules on
// the expressions written as recording rules).
func TestDashboards(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(chartDir(t), "files", "dashboards", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatal("no charts/gatehouse/files/dashboards/*.json")
	}
	var exprs []string
	var origins []string
	uids := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			UID    string `json:"uid"`
			Title  string `json:"title"`
			Panels []any  `json:"panels"`
		}
		if err := json.Unmarshal(b, &meta); err != nil {
			t.Errorf("%s: invalid JSON: %v", filepath.Base(f), err)
			continue
		}
		if meta.Title == "" || meta.UID == "" {
			t.Errorf("%s: a dashboard needs a title and a uid (stable links, no duplicates on import)", filepath.Base(f))
		}
		if other, dup := uids[meta.UID]; dup && meta.UID != "" {
			t.Errorf("%s and %s share uid %q", other, filepath.Base(f), meta.UID)
		}
		uids[meta.UID] = filepath.Base(f)
		if len(meta.Panels) == 0 {
			t.Errorf("%s: no panels", filepath.Base(f))
		}
		found, err := DashboardExprs(b)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		if len(found) == 0 {
			t.Errorf("%s: no PromQL expressions", filepath.Base(f))
		}
		for _, e := range found {
			exprs = append(exprs, SubstituteGrafanaVars(e.Expr))
			origins = append(origins, filepath.Base(f)+": "+e.Path)
		}
	}
	if len(exprs) == 0 {
		return
	}
	tool := promtool(t)
	checkExprs(t, tool, exprs, origins)
}

// checkExprs runs promtool over all expressions at once and, if that fails,
// over each one, so the message names the dashboard panel.
func checkExprs(t *testing.T, tool string, exprs, origins []string) {
	t.Helper()
	check := func(exprs []string) (string, error) {
		b, err := RecordingRules(exprs)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "exprs.yaml")
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return RunPromtool(tool, filepath.Dir(f), "check", "rules", f)
	}
	if _, err := check(exprs); err == nil {
		t.Logf("promtool parsed %d dashboard expressions", len(exprs))
		return
	}
	for i, e := range exprs {
		if out, err := check([]string{e}); err != nil {
			t.Errorf("%s: PromQL does not parse: %s\n%s", origins[i], e, out)
		}
	}
}

// TestPromtoolRejectsBadPromQL: the dashboard check fails on an expression
// that does not parse, and accepts Grafana's interval variables.
func TestPromtoolRejectsBadPromQL(t *testing.T) {
	tool := promtool(t)
	dash := []byte(`{"panels": [{"targets": [
		{"expr": "sum(rate(grpc_server_handled_total{job=~\"$job\"}[$__rate_interval])) by (grpc_code)"},
		{"expr": "histogram_quantile(0.99, sum by (le) (rate(grpc_server_handling_seconds_bucket[${__interval}])))"}
	]}]}`)
	found, err := DashboardExprs(dash)
	if err != nil || len(found) != 2 {
		t.Fatalf("DashboardExprs: %v, %d expressions", err, len(found))
	}
	var good []string
	for _, e := range found {
		good = append(good, SubstituteGrafanaVars(e.Expr))
	}
	b, _ := RecordingRules(good)
	f := filepath.Join(t.TempDir(), "good.yaml")
	_ = os.WriteFile(f, b, 0o644)
	if out, err := RunPromtool(tool, filepath.Dir(f), "check", "rules", f); err != nil {
		t.Errorf("valid expressions rejected: %v\n%s", err, out)
	}
	for i, bad := range []string{"sum(rate(x[5m])", "rate(x)", "up{job=\"a\"} +", "sum by (le rate(x[5m]))"} {
		b, _ := RecordingRules([]string{bad})
		f := filepath.Join(t.TempDir(), fmt.Sprintf("bad%d.yaml", i))
		_ = os.WriteFile(f, b, 0o644)
		if _, err := RunPromtool(tool, filepath.Dir(f), "check", "rules", f); err == nil {
			t.Errorf("promtool accepted %q", bad)
		}
	}
}

// TestRunbookBaseURL: every alert's runbook_url starts with
// metrics.prometheusRule.runbookBaseUrl, followed by the alert's anchor
// (which the chart README's "Alerts and runbooks" section must carry);
// a base with a fragment or no scheme is refused by the schema.
func TestRunbookBaseURL(t *testing.T) {
	dir := chartDir(t)
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		base, want string
	}{
		{"", "https://github.com/gatehouse-dev/gatehouse/blob/main/charts/gatehouse/README.md#"},
		{"https://wiki.example.com/runbooks/gatehouse", "https://wiki.example.com/runbooks/gatehouse#"},
	} {
		values := map[string]any{"metrics": map[string]any{"prometheusRule": map[string]any{"enabled": true}}}
		if tt.base != "" {
			values["metrics"].(map[string]any)["prometheusRule"].(map[string]any)["runbookBaseUrl"] = tt.base
		}
		r, err := RenderChart(dir, RenderOptions{ReleaseName: "gatehouse", Namespace: "gatehouse", Values: values, Monitoring: true})
		if err != nil {
			t.Fatal(err)
		}
		var urls []string
		for _, o := range r.All() {
			if o.GVK.Kind != "PrometheusRule" {
				continue
			}
			for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\S+)[\s\S]*?runbook_url: (\S+)`).FindAllStringSubmatch(string(o.Raw), -1) {
				if want := tt.want + strings.ToLower(m[1]); m[2] != want {
					t.Errorf("base %q: %s runbook_url = %s, want %s", tt.base, m[1], m[2], want)
				}
				if !strings.Contains(string(readme), "### "+m[1]+"\n") {
					t.Errorf("charts/gatehouse/README.md has no runbook section '### %s'", m[1])
				}
				urls = append(urls, m[2])
			}
		}
		if len(urls) < 9 {
			t.Errorf("base %q: %d runbook URLs rendered, want one per alert (9)", tt.base, len(urls))
		}
	}
	for _, bad := range []string{"wiki.example.com/runbooks", "https://wiki.example.com/runbooks#section", "https://a b"} {
		values := map[string]any{"metrics": map[string]any{"prometheusRule": map[string]any{"runbookBaseUrl": bad}}}
		if _, err := RenderChart(dir, RenderOptions{ReleaseName: "gatehouse", Namespace: "gatehouse", Values: values}); err == nil {
			t.Errorf("runbookBaseUrl %q accepted", bad)
		}
	}
}
