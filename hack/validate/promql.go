package validate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Promtool finds promtool: $PROMTOOL, else on PATH. Debian's `prometheus`
// package ships it as /usr/bin/promtool.
func Promtool() (string, error) {
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p, nil
	}
	return exec.LookPath("promtool")
}

// RunPromtool runs promtool with args in dir and returns its combined output.
func RunPromtool(promtool, dir string, args ...string) (string, error) {
	cmd := exec.Command(promtool, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// DashboardExpr is one PromQL expression found in a Grafana dashboard.
type DashboardExpr struct {
	Path string // JSON path, for messages: panels[3].targets[0].expr
	Expr string
}

// DashboardExprs walks a Grafana dashboard's JSON and returns every non-empty
// "expr" string (panel targets, nested rows, annotations, variables).
func DashboardExprs(dashboard []byte) ([]DashboardExpr, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(dashboard))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the JSON document")
	}
	var out []DashboardExpr
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch t := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				p := k
				if path != "" {
					p = path + "." + k
				}
				if s, ok := t[k].(string); ok && k == "expr" && strings.TrimSpace(s) != "" {
					out = append(out, DashboardExpr{Path: p, Expr: s})
					continue
				}
				walk(p, t[k])
			}
		case []any:
			for i, e := range t {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	walk("", v)
	return out, nil
}

// grafanaVars are Grafana's global variables that stand where PromQL needs a
// duration or number; any other $variable must appear inside a string (a
// label matcher), where it is plain text to the PromQL parser.
var grafanaVars = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`\$\{?__rate_interval\}?`), "5m"},
	{regexp.MustCompile(`\$\{?__interval_ms\}?`), "60000"},
	{regexp.MustCompile(`\$\{?__interval\}?`), "1m"},
	{regexp.MustCompile(`\$\{?__range_s\}?`), "3600"},
	{regexp.MustCompile(`\$\{?__range_ms\}?`), "3600000"},
	{regexp.MustCompile(`\$\{?__range\}?`), "1h"},
}

// SubstituteGrafanaVars replaces Grafana's interval and range variables with
// sample values, so the expression is PromQL a parser accepts.
func SubstituteGrafanaVars(expr string) string {
	for _, v := range grafanaVars {
		expr = v.re.ReplaceAllString(expr, v.repl)
	}
	return expr
}

// RecordingRules writes exprs as recording rules into a rule file that
// `promtool check rules` parses; the record names carry the index so an
// error message points back at exprs[i].
func RecordingRules(exprs []string) ([]byte, error) {
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	type group struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	}
	g := group{Name: "dashboard-exprs"}
	for i, e := range exprs {
		g.Rules = append(g.Rules, rule{Record: fmt.Sprintf("dashboard_expr_%d", i), Expr: e})
	}
	return yaml.Marshal(map[string]any{"groups": []group{g}})
}

// PrometheusRuleGroups reads the "groups" of a Prometheus rule file, or of a
// PrometheusRule's spec, as plain data for comparison.
func PrometheusRuleGroups(file string) (any, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(file), err)
	}
	if spec, ok := doc["spec"].(map[string]any); ok {
		doc = spec
	}
	groups, ok := doc["groups"]
	if !ok {
		return nil, fmt.Errorf("%s: no groups", filepath.Base(file))
	}
	return groups, nil
}
