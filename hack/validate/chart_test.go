package validate

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/strvals"
	corev1 "k8s.io/api/core/v1"
)

// TestChartLint is `helm lint --strict` with the chart's defaults and with
// each ci/*.yaml: warnings fail too.
func TestChartLint(t *testing.T) {
	dir := chartDir(t)
	for _, c := range valuesCases(t, dir) {
		t.Run(c.name, func(t *testing.T) {
			if err := LintChart(dir, c.files); err != nil {
				t.Error(err)
			}
		})
	}
}

// monitoringKinds are the prometheus-operator kinds a chart may render.
func monitoringObjects(objs []Object) []Object {
	var out []Object
	for _, o := range objs {
		if o.GVK.Group == "monitoring.coreos.com" {
			out = append(out, o)
		}
	}
	return out
}

// TestChartRender renders the chart the way `helm install --dry-run` does,
// with the defaults and each ci/*.yaml, on a cluster with and without the
// prometheus-operator's CRDs, and checks every object: strict typed
// decoding, Pod Security "restricted" for every pod (helm test hooks too),
// references, and the services' posture.
func TestChartRender(t *testing.T) {
	dir := chartDir(t)
	type render struct {
		name               string
		release, namespace string
		files              []string
	}
	var renders []render
	for _, c := range valuesCases(t, dir) {
		renders = append(renders, render{c.name, "gatehouse", "gatehouse", c.files})
	}
	// A release not named after the chart, in another namespace: names and
	// addresses must follow the release, not be hard-coded.
	renders = append(renders, render{"defaults/release=other", "other", "other-ns", nil})

	sawMonitoring := map[string]bool{}
	for _, r := range renders {
		for _, monitoring := range []bool{true, false} {
			name := r.name + "/without-monitoring-crds"
			if monitoring {
				name = r.name + "/with-monitoring-crds"
			}
			t.Run(name, func(t *testing.T) {
				out, err := RenderChart(dir, RenderOptions{ReleaseName: r.release, Namespace: r.namespace, ValuesFiles: r.files, Monitoring: monitoring})
				if err != nil {
					t.Fatal(err)
				}
				all := out.All()
				if err := CheckAllRestricted(all); err != nil {
					t.Error(err)
				}
				// A Secret the chart does not render must be one the values
				// name (existingSecret: ...), i.e. one the operator provides.
				if err := CheckReferences(all, func(kind, name string) bool {
					return kind == "Secret" && valuesMention(r.files, name)
				}); err != nil {
					t.Error(err)
				}
				checkServicePosture(t, out.Manifests, 1)
				for _, o := range all {
					if ns := o.Meta().GetNamespace(); ns != "" && ns != r.namespace {
						t.Errorf("%s is in namespace %q, not the release's %q", o, ns, r.namespace)
					}
				}
				mon := monitoringObjects(all)
				if !monitoring {
					for _, o := range mon {
						if !forcedOn(t, r.files, o.GVK.Kind) {
							t.Errorf("rendered %s on a cluster without the monitoring.coreos.com CRDs: the install would fail", o)
						}
					}
				}
				if len(Find(mon, "ServiceMonitor", "")) > 0 {
					if jobs := strings.Join(scrapedJobs(t, all), ","); jobs != wantJobs {
						t.Errorf("the ServiceMonitor yields Prometheus jobs %s, files/prometheus-rules.yaml selects %s", jobs, wantJobs)
					}
				}
				for _, o := range mon {
					sawMonitoring[o.GVK.Kind] = true
				}
			})
		}
	}
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		if !sawMonitoring[kind] {
			t.Errorf("no values case renders a %s even with the CRDs present", kind)
		}
	}
}

// TestChartRejectsBadValues: every file in tests/bad-values/ must fail the
// install path (values.schema.json, then the templates' own checks). The
// log says which layer refused it.
func TestChartRejectsBadValues(t *testing.T) {
	dir := chartDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "tests", "bad-values", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatalf("no %s: every schema rule deserves a values file it rejects", filepath.Join(dir, "tests", "bad-values", "*.yaml"))
	}
	ch, err := LoadChart(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Schema) == 0 {
		t.Fatalf("the chart has no values.schema.json")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			schemaErr := ValidateValuesFile(ch, f)
			_, renderErr := RenderChart(dir, RenderOptions{ReleaseName: "gatehouse", Namespace: "gatehouse", ValuesFiles: []string{f}, Monitoring: true})
			switch {
			case renderErr == nil:
				b, _ := os.ReadFile(f)
				t.Errorf("helm install would accept it:\n%s", b)
			case schemaErr != nil:
				t.Logf("rejected by values.schema.json: %s", firstLine(schemaErr.Error(), 3))
			default:
				t.Logf("passes the schema, rejected by the templates: %s", firstLine(renderErr.Error(), 3))
			}
		})
	}
}

func firstLine(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, " | ")
}

// forcedOn reports whether the values files switch a monitoring kind on
// explicitly (metrics.serviceMonitor.enabled: true instead of auto): then
// the user asked for it whatever the cluster says.
func forcedOn(t *testing.T, files []string, kind string) bool {
	t.Helper()
	key := map[string]string{"ServiceMonitor": "serviceMonitor", "PrometheusRule": "prometheusRule"}[kind]
	vals, err := ReadValues(files)
	if err != nil || key == "" {
		return false
	}
	metrics, _ := vals["metrics"].(map[string]any)
	m, _ := metrics[key].(map[string]any)
	return m["enabled"] == true
}

// TestAllDigitImageTag replays a CI failure: the commit 8086789 became the
// image tag, helm's --set made user.image.tag the number 8086789, and the schema
// refused the release. Every script that passes a tag must use --set-string.
func TestAllDigitImageTag(t *testing.T) {
	dir := chartDir(t)
	const set = "user.image.tag=8086789"
	typed, err := strvals.Parse(set) // what --set does
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RenderChart(dir, RenderOptions{ReleaseName: "gatehouse", Namespace: "gatehouse", Values: typed}); err == nil ||
		!strings.Contains(err.Error(), "want string") {
		t.Errorf("--set %s: err = %v, want the schema to refuse a number", set, err)
	}
	str, err := strvals.ParseString(set) // what --set-string does
	if err != nil {
		t.Fatal(err)
	}
	r, err := RenderChart(dir, RenderOptions{ReleaseName: "gatehouse", Namespace: "gatehouse", Values: str})
	if err != nil {
		t.Fatalf("--set-string %s: %v", set, err)
	}
	found := false
	for _, o := range r.All() {
		found = found || strings.Contains(string(o.Raw), "gatehouse-user:8086789\"")
	}
	if !found {
		t.Errorf("--set-string %s: no container runs gatehouse-user:8086789", set)
	}

	// The scripts and docs: any --set of an image tag is a --set-string.
	root := repoRoot(t)
	out, err := exec.Command("git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard",
		"--", "*.sh", "*.md", "Makefile", "*.go", "*.yaml").Output()
	if err != nil {
		t.Skipf("git ls-files: %v (not a git checkout?)", err)
	}
	for _, f := range strings.Fields(string(out)) {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue // deleted in the work tree
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := typedTagSet.FindString(line); m != "" {
				t.Errorf("%s:%d: %q: an all-digit tag becomes a number; use --set-string", f, i+1, m)
			}
		}
	}
}

// typedTagSet matches a --set (not --set-string) of image.tag or
// <component>.image.tag, quoted or not.
var typedTagSet = regexp.MustCompile(`--set[ =]+"?[\w.]*image\.tag=`)

// TestUpgradeReusingPreviousValues: `helm upgrade --reuse-values` renders
// the new templates and schema with the release's old values, not the new
// chart's defaults (TestKeyRotation's upgrade failed that way: "missing
// property 'acceptedIssuers'"). A release from before the issuer became a
// URL must upgrade as is: its "gatehouse-auth" issuer reads as the derived
// URL, its tokens stay accepted, and its users log in as client gatehouse.
func TestUpgradeReusingPreviousValues(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gatehouse")
	if err := os.CopyFS(dir, os.DirFS(chartDir(t))); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(filepath.Join("testdata", "values-before-issuer-url.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "values.yaml"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := RenderChart(dir, RenderOptions{ReleaseName: "gatehouse", Namespace: "gatehouse"})
	if err != nil {
		t.Fatalf("the new chart refuses the previous release's values: %v", err)
	}
	want := map[string]map[string]string{
		"gatehouse-auth": {"JWT_ISSUER": "https://gatehouse-auth.gatehouse.svc.cluster.local:8082", "JWT_ACCEPTED_ISSUERS": "gatehouse-auth", "CLIENT_IDS": "gatehouse"},
		"gatehouse-user": {"JWT_ISSUER": "https://gatehouse-auth.gatehouse.svc.cluster.local:8082", "JWT_ACCEPTED_ISSUERS": "gatehouse-auth"},
	}
	for name, vars := range want {
		cms := Find(r.All(), "ConfigMap", name)
		if len(cms) != 1 {
			t.Fatalf("ConfigMap %s: found %d", name, len(cms))
		}
		data := cms[0].Obj.(*corev1.ConfigMap).Data
		for k, v := range vars {
			if data[k] != v {
				t.Errorf("%s %s = %q, want %q", name, k, data[k], v)
			}
		}
	}
}

// TestImageRegistry: image.registry moves both Gatehouse images (and the
// helm test pod's, which is the User image) to another registry, keeping
// their names; digests and per-service tags still apply; PostgreSQL's image
// is left alone; a malformed registry is refused by the schema.
func TestImageRegistry(t *testing.T) {
	dir := chartDir(t)
	for _, tt := range []struct {
		name   string
		values string
		want   []string
	}{
		{"default", "", []string{"ghcr.io/gatehouse-dev/gatehouse-user:0.1.0", "ghcr.io/gatehouse-dev/gatehouse-auth:0.1.0"}},
		{"registry and tag", "image.registry=localhost:5001/gatehouse,image.tag=v0.2.0",
			[]string{"localhost:5001/gatehouse/gatehouse-user:v0.2.0", "localhost:5001/gatehouse/gatehouse-auth:v0.2.0"}},
		{"trailing slash, per-service digest", "image.registry=registry.example.com/,auth.image.digest=sha256:" + strings.Repeat("a", 64),
			[]string{"registry.example.com/gatehouse-user:0.1.0", "registry.example.com/gatehouse-auth@sha256:" + strings.Repeat("a", 64)}},
		{"bundled PostgreSQL keeps its image", "image.registry=localhost:5001,postgresql.enabled=true",
			[]string{"localhost:5001/gatehouse-user:0.1.0", "docker.io/library/postgres:17.6"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			values, err := strvals.Parse(tt.values) // as --set; tags here are not all digits
			if err != nil {
				t.Fatal(err)
			}
			r, err := RenderChart(dir, RenderOptions{ReleaseName: "gatehouse", Namespace: "gatehouse", Values: values})
			if err != nil {
				t.Fatal(err)
			}
			var all strings.Builder
			for _, o := range r.All() {
				all.Write(o.Raw)
			}
			for _, img := range tt.want {
				if !strings.Contains(all.String(), `image: "`+img+`"`) && !strings.Contains(all.String(), "image: "+img+"\n") {
					t.Errorf("no container runs %s", img)
				}
			}
		})
	}
	for _, bad := range []string{"https://registry.example.com", "Registry.example.com", "a b", "host:port"} {
		values, err := strvals.ParseString("image.registry=" + bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := RenderChart(dir, RenderOptions{ReleaseName: "gatehouse", Namespace: "gatehouse", Values: values}); err == nil {
			t.Errorf("image.registry=%q accepted", bad)
		}
	}
}
