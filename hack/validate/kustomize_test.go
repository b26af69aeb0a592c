package validate

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// overlayFixtures are the git-ignored files an overlay's secretGenerator
// reads, which a user creates before `kubectl apply -k` (see the overlay's
// kustomization.yaml). The tests create throwaway ones in a copy of k8s/.
func overlayFixtures(t *testing.T) map[string]map[string][]byte {
	return map[string]map[string][]byte{
		"kind": {
			"keys/signing.pem": ed25519PEM(t),
			"admin-password":   []byte("fixture-password-not-a-secret\n"),
		},
		// base with the tls component, the shape the chart's defaults
		// compare with (TestKustomizeBaseMatchesChart).
		"tls-parity": {
			"kustomization.yaml": []byte("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n" +
				"resources: [../../base]\ncomponents: [../../components/tls]\n"),
		},
	}
}

// externalSecrets are the Secrets each kustomization references but leaves
// to the operator (or, for base, to the overlays).
var externalSecrets = map[string][]string{
	"base":       {"gatehouse-auth-keys", "gatehouse-bootstrap-admin"},
	"production": {"gatehouse-auth-keys", "gatehouse-bootstrap-admin", "gatehouse-database", "gatehouse-user-tls", "gatehouse-auth-tls"},
}

// renderTree copies k8s/ to a temporary directory, adds the overlay
// fixtures, and renders k8s/<rel> there: the repository is never written.
func renderTree(t *testing.T, rel string) []Object {
	t.Helper()
	tmp := t.TempDir()
	if err := CopyTree(filepath.Join(repoRoot(t), "k8s"), tmp); err != nil {
		t.Fatal(err)
	}
	for overlay, files := range overlayFixtures(t) {
		for name, content := range files {
			p := filepath.Join(tmp, "overlays", overlay, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, content, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	objs, _, err := RenderKustomization(filepath.Join(tmp, rel))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// kustomizations returns k8s/base and every k8s/overlays/*.
func kustomizations(t *testing.T) []string {
	t.Helper()
	dirs := []string{"base"}
	overlays, err := filepath.Glob(filepath.Join(repoRoot(t), "k8s", "overlays", "*", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range overlays {
		dirs = append(dirs, filepath.Join("overlays", filepath.Base(filepath.Dir(o))))
	}
	sort.Strings(dirs)
	if len(dirs) < 3 {
		t.Fatalf("want k8s/base and at least two overlays (kind, production), found %v", dirs)
	}
	return dirs
}

// TestKustomizations renders base and every overlay and runs the checks every
// render must pass: strict typed decoding (in RenderKustomization), Pod
// Security "restricted", references, and the services' posture.
func TestKustomizations(t *testing.T) {
	for _, rel := range kustomizations(t) {
		t.Run(rel, func(t *testing.T) {
			objs := renderTree(t, rel)
			if err := CheckAllRestricted(objs); err != nil {
				t.Error(err)
			}
			ext := externalSecrets[filepath.Base(rel)]
			err := CheckReferences(objs, func(kind, name string) bool {
				for _, e := range ext {
					if kind == "Secret" && name == e {
						return true
					}
				}
				return false
			})
			if err != nil {
				t.Error(err)
			}
			checkServicePosture(t, objs, 1)
			if rel != "base" {
				checkNamespace(t, objs)
			}
		})
	}
}

// checkNamespace: an overlay puts everything in one namespace that enforces
// Pod Security "restricted".
func checkNamespace(t *testing.T, objs []Object) {
	t.Helper()
	nss := Find(objs, "Namespace", "")
	if len(nss) != 1 {
		t.Fatalf("want exactly one Namespace, have %d", len(nss))
	}
	ns := nss[0].Obj.(*corev1.Namespace)
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("Namespace %s: pod-security.kubernetes.io/enforce=%q, want restricted", ns.Name, got)
	}
	for _, o := range objs {
		if o.GVK.Kind != "Namespace" && o.Meta().GetNamespace() != ns.Name {
			t.Errorf("%s is not in namespace %s", o, ns.Name)
		}
	}
}

func TestKindOverlay(t *testing.T) {
	objs := renderTree(t, "overlays/kind")
	deps := serviceDeployments(t, objs)
	for svc, d := range deps {
		c, _ := serviceContainer(&d.Spec.Template.Spec)
		if !strings.HasSuffix(c.Image, "/gatehouse-"+svc+":local") {
			t.Errorf("%s: image %q, want the locally built ghcr.io/gatehouse-dev/gatehouse-%s:local", d.Name, c.Image, svc)
		}
		for _, c := range append(d.Spec.Template.Spec.InitContainers, d.Spec.Template.Spec.Containers...) {
			if c.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("%s: container %s imagePullPolicy %q, want IfNotPresent", d.Name, c.Name, c.ImagePullPolicy)
			}
		}
		// components/postgres: two replicas, URL from the ConfigMap, password from the Secret.
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
			t.Errorf("%s: want 2 replicas on PostgreSQL", d.Name)
		}
		if url, _ := envValue(objs, c, "DATABASE_URL"); !strings.HasPrefix(url, "postgres://") {
			t.Errorf("%s: DATABASE_URL %q, want the bundled PostgreSQL", d.Name, url)
		}
		if _, plain := envValue(objs, c, "PGPASSWORD"); plain {
			t.Errorf("%s: PGPASSWORD must come from a Secret", d.Name)
		}
		// components/tracing
		if ep, _ := envValue(objs, c, "OTEL_EXPORTER_OTLP_ENDPOINT"); ep != "http://gatehouse-jaeger:4317" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT %q, want the bundled Jaeger", d.Name, ep)
		}
	}
	if len(Find(objs, "PersistentVolumeClaim", "")) != 0 {
		t.Errorf("PostgreSQL mode must not keep the SQLite volumes")
	}
	if len(Find(objs, "StatefulSet", "gatehouse-postgres")) != 1 {
		t.Errorf("no bundled PostgreSQL StatefulSet; rendered: %s", Kinds(objs))
	}
	jaeger := Find(objs, "Deployment", "gatehouse-jaeger")
	if len(jaeger) != 1 {
		t.Fatalf("no bundled Jaeger; rendered: %s", Kinds(objs))
	}
	jc := jaeger[0].Obj.(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
	if v, _ := envValue(objs, &jc, "COLLECTOR_OTLP_ENABLED"); v != "true" {
		t.Errorf("Jaeger needs COLLECTOR_OTLP_ENABLED=true")
	}
	if !strings.HasSuffix(jc.Image, ":1.62.0") {
		t.Errorf("Jaeger image %q, want all-in-one 1.62.0", jc.Image)
	}
	if len(Find(objs, "ServiceMonitor", "")) != 1 || len(Find(objs, "PrometheusRule", "")) != 1 {
		t.Errorf("the monitoring component is not on; rendered: %s", Kinds(objs))
	}
	// The signing keys: every file one key, updated in place (no hash suffix)
	// so the Auth service reloads them without a restart.
	keys := Find(objs, "Secret", "gatehouse-auth-keys")
	if len(keys) != 1 {
		t.Fatalf("no Secret gatehouse-auth-keys (without a hash suffix); rendered: %s", Kinds(objs))
	}
	for name, data := range keys[0].Obj.(*corev1.Secret).Data {
		if !strings.HasSuffix(name, ".pem") || !strings.Contains(string(data), "PRIVATE KEY") {
			t.Errorf("signing key Secret entry %q is not a PEM private key", name)
		}
	}
}

func TestProductionOverlay(t *testing.T) {
	objs := renderTree(t, "overlays/production")
	checkServicePosture(t, objs, 2)
	for _, kind := range []string{"PersistentVolumeClaim", "StatefulSet", "Secret"} {
		if found := Find(objs, kind, ""); len(found) != 0 {
			t.Errorf("production renders no %s (external database, operator-provided Secrets); found %s", kind, Kinds(found))
		}
	}
	if len(Find(objs, "Deployment", "gatehouse-jaeger")) != 0 {
		t.Errorf("production bundles no Jaeger")
	}
	pdbs := Find(objs, "PodDisruptionBudget", "")
	for svc, d := range serviceDeployments(t, objs) {
		c, _ := serviceContainer(&d.Spec.Template.Spec)
		var fromSecret bool
		for _, e := range c.Env {
			fromSecret = fromSecret || e.Name == "DATABASE_URL" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
				e.ValueFrom.SecretKeyRef.Name == "gatehouse-database"
		}
		if !fromSecret {
			t.Errorf("%s: DATABASE_URL must come from the operator's Secret gatehouse-database", d.Name)
		}
		covered := false
		for _, o := range pdbs {
			pdb := o.Obj.(*policyv1.PodDisruptionBudget)
			match := true
			for k, v := range pdb.Spec.Selector.MatchLabels {
				match = match && d.Spec.Template.Labels[k] == v
			}
			covered = covered || match
		}
		if !covered {
			t.Errorf("no PodDisruptionBudget covers the %s pods", svc)
		}
	}
}

// TestServiceMonitorScrapesBothServices: the monitor selects the two
// ClusterIP Services (not the headless one) on their metrics port.
func TestServiceMonitorScrapesBothServices(t *testing.T) {
	objs := renderTree(t, "overlays/kind")
	sm := Find(objs, "ServiceMonitor", "")[0].Obj.(*monitoringv1.ServiceMonitor)
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	var selected []string
	for _, o := range Find(objs, "Service", "") {
		svc := o.Obj.(*corev1.Service)
		if sel.Matches(labels.Set(svc.Labels)) {
			selected = append(selected, svc.Name)
		}
	}
	sort.Strings(selected)
	if strings.Join(selected, ",") != "gatehouse-auth,gatehouse-user" {
		t.Errorf("ServiceMonitor selects %v, want gatehouse-auth and gatehouse-user", selected)
	}
	if jobs := strings.Join(scrapedJobs(t, objs), ","); jobs != wantJobs {
		t.Errorf("Prometheus jobs %s, the alert rules select on %s", jobs, wantJobs)
	}
}

// privateKeyPEM matches a PEM private key with a body, not the bare marker a
// template may compare against.
var privateKeyPEM = regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{40,}-----END`)

// TestNoKeyMaterialInTree: nothing under k8s/ or charts/ that git would
// commit holds a private key (the kind overlay's keys/ is git-ignored).
func TestNoKeyMaterialInTree(t *testing.T) {
	root := repoRoot(t)
	out, err := exec.Command("git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard", "--", "k8s", "charts", "skaffold.yaml").Output()
	if err != nil {
		t.Skipf("git ls-files: %v (not a git checkout?)", err)
	}
	for _, f := range strings.Fields(string(out)) {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue // deleted in the work tree
		}
		if privateKeyPEM.Match(b) {
			t.Errorf("%s holds a private key; key material must not be committed", f)
		}
	}
}
