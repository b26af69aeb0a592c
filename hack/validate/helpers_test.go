package validate

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// chartDir is charts/gatehouse; its absence is a failure, not a skip.
func chartDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "charts", "gatehouse")
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		t.Fatalf("the Helm chart is missing: %v", err)
	}
	return dir
}

// valuesCase is one way the chart is installed: chart defaults, or a values
// file from charts/gatehouse/ci/ (the files `ct lint` uses).
type valuesCase struct {
	name  string
	files []string
}

func valuesCases(t *testing.T, dir string) []valuesCase {
	t.Helper()
	cases := []valuesCase{{name: "defaults"}}
	files, err := filepath.Glob(filepath.Join(dir, "ci", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	for _, f := range files {
		cases = append(cases, valuesCase{name: "ci/" + filepath.Base(f), files: []string{f}})
	}
	return cases
}

// valuesMention reports whether any of the files names s: a Secret named in
// the values (existingSecret: ...) is one the operator provides.
func valuesMention(files []string, s string) bool {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}

// serviceContainer returns the gatehouse-user or gatehouse-auth container of a
// workload, or nil.
func serviceContainer(spec *corev1.PodSpec) (*corev1.Container, string) {
	for i := range spec.Containers {
		c := &spec.Containers[i]
		for _, svc := range []string{"user", "auth"} {
			if strings.Contains(c.Image, "/gatehouse-"+svc+":") || strings.Contains(c.Image, "/gatehouse-"+svc+"@") {
				return c, svc
			}
		}
	}
	return nil, ""
}

// serviceDeployments returns the Deployments running the User and Auth
// services, keyed "user" and "auth".
func serviceDeployments(t *testing.T, objs []Object) map[string]*appsv1.Deployment {
	t.Helper()
	out := map[string]*appsv1.Deployment{}
	for _, o := range objs {
		d, ok := o.Obj.(*appsv1.Deployment)
		if !ok {
			continue
		}
		if _, svc := serviceContainer(&d.Spec.Template.Spec); svc != "" {
			if out[svc] != nil {
				t.Errorf("two Deployments run the %s service: %s and %s", svc, out[svc].Name, d.Name)
			}
			out[svc] = d
		}
	}
	for _, svc := range []string{"user", "auth"} {
		if out[svc] == nil {
			t.Errorf("no Deployment runs the %s service; rendered: %s", svc, Kinds(objs))
		}
	}
	return out
}

// envValue resolves a container's environment variable from env and the
// ConfigMaps its envFrom names, as the kubelet does (env wins, later envFrom
// sources win over earlier ones).
func envValue(objs []Object, c *corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, e.ValueFrom == nil
		}
	}
	val, found := "", false
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			continue
		}
		for _, o := range Find(objs, "ConfigMap", ef.ConfigMapRef.Name) {
			if v, ok := o.Obj.(*corev1.ConfigMap).Data[ef.Prefix+name]; ok {
				val, found = v, true
			}
		}
	}
	return val, found
}

func durationEnv(t *testing.T, objs []Object, c *corev1.Container, name string, def time.Duration) time.Duration {
	t.Helper()
	v, ok := envValue(objs, c, name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Errorf("container %s: %s=%q: %v", c.Name, name, v, err)
		return def
	}
	return d
}

// checkServicePosture asserts what the README's security model promises
// of every User and Auth pod, whichever way it is deployed.
func checkServicePosture(t *testing.T, objs []Object, minReplicas int32) {
	t.Helper()
	for svc, d := range serviceDeployments(t, objs) {
		spec := &d.Spec.Template.Spec
		c, _ := serviceContainer(spec)
		where := "Deployment " + d.Name + " (" + svc + ")"
		if d.Spec.Replicas != nil && *d.Spec.Replicas < minReplicas {
			t.Errorf("%s: %d replicas, want at least %d", where, *d.Spec.Replicas, minReplicas)
		}
		// SQLite on a ReadWriteOnce claim: one replica, Recreate (a surge pod
		// could not attach the volume on another node). Otherwise a rollout
		// never goes below the desired count.
		sqlite := false
		for _, v := range spec.Volumes {
			sqlite = sqlite || v.PersistentVolumeClaim != nil
		}
		s := d.Spec.Strategy
		switch {
		case sqlite && (d.Spec.Replicas == nil || *d.Spec.Replicas != 1):
			t.Errorf("%s: SQLite on a volume allows exactly one replica", where)
		case sqlite && s.Type != appsv1.RecreateDeploymentStrategyType:
			t.Errorf("%s: SQLite on a ReadWriteOnce volume wants the Recreate strategy, have %+v", where, s)
		case !sqlite && (s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil ||
			s.RollingUpdate.MaxUnavailable == nil || s.RollingUpdate.MaxUnavailable.String() != "0" && s.RollingUpdate.MaxUnavailable.String() != "0%"):
			t.Errorf("%s: want a RollingUpdate with maxUnavailable 0, have %+v", where, s)
		}
		drain := durationEnv(t, objs, c, "DRAIN_DELAY", 5*time.Second)
		shutdown := durationEnv(t, objs, c, "SHUTDOWN_TIMEOUT", 20*time.Second)
		const margin = 5 * time.Second // trace flush, store close
		if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < drain+shutdown+margin {
			t.Errorf("%s: terminationGracePeriodSeconds %v must be at least DRAIN_DELAY (%s) + SHUTDOWN_TIMEOUT (%s) + %s", where, g, drain, shutdown, margin)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken must be false", where)
		}
		if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: container %s needs readOnlyRootFilesystem: true", where, c.Name)
		}
		var grpcPort, healthPort int32
		for _, p := range c.Ports {
			switch p.Name {
			case "grpc":
				grpcPort = p.ContainerPort
			case "health":
				healthPort = p.ContainerPort
			}
		}
		if grpcPort == 0 || healthPort == 0 {
			t.Errorf("%s: container %s needs ports named grpc and health (the plaintext health-only port the probes use)", where, c.Name)
		}
		checkGRPCProbe := func(kind string, p *corev1.Probe, service string) {
			switch {
			case p == nil:
				t.Errorf("%s: no %s probe", where, kind)
			case p.GRPC == nil:
				t.Errorf("%s: %s probe is not a native gRPC probe", where, kind)
			case p.GRPC.Port != healthPort:
				// The kubelet's gRPC probe cannot speak TLS: it must use
				// the plaintext health port, not the (TLS) gRPC port.
				t.Errorf("%s: %s probe on port %d, the health port is %d", where, kind, p.GRPC.Port, healthPort)
			case p.GRPC.Service == nil && service != "" || p.GRPC.Service != nil && *p.GRPC.Service != service:
				t.Errorf("%s: %s probe asks for health service %v, want %q", where, kind, p.GRPC.Service, service)
			}
		}
		checkGRPCProbe("readiness", c.ReadinessProbe, "")
		checkGRPCProbe("liveness", c.LivenessProbe, "liveness")
		checkGRPCProbe("startup", c.StartupProbe, "liveness")
		checkServiceMounts(t, objs, where, svc, spec, c)
		r := c.Resources
		if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
			t.Errorf("%s: container %s needs cpu and memory requests and a memory limit, has %v", where, c.Name, r)
		}
	}
	for _, p := range PodTemplates(objs) {
		for _, c := range append(append([]corev1.Container(nil), p.Spec.InitContainers...), p.Spec.Containers...) {
			checkImageRef(t, p.Owner, c)
		}
	}
}

// checkImageRef refuses untagged and :latest images: they default to
// imagePullPolicy Always, which breaks images loaded into kind.
func checkImageRef(t *testing.T, owner Object, c corev1.Container) {
	t.Helper()
	img := c.Image
	if strings.Contains(img, "@sha256:") {
		return
	}
	name := img[strings.LastIndex(img, "/")+1:]
	i := strings.LastIndex(name, ":")
	if i < 0 || name[i+1:] == "latest" || name[i+1:] == "" {
		t.Errorf("%s: container %s: image %q needs a version tag (not :latest)", owner, c.Name, img)
	}
}

// ed25519PEM returns a fresh PKCS#8 Ed25519 private key, the format
// hack/keygen and `openssl genpkey -algorithm ed25519` write.
func ed25519PEM(t *testing.T) []byte {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// scrapedJobs returns the Prometheus job names the ServiceMonitors produce:
// the jobLabel's value on each selected Service, else the Service's name.
func scrapedJobs(t *testing.T, objs []Object) []string {
	t.Helper()
	var jobs []string
	for _, o := range Find(objs, "ServiceMonitor", "") {
		sm := o.Obj.(*monitoringv1.ServiceMonitor)
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		for _, so := range Find(objs, "Service", "") {
			svc := so.Obj.(*corev1.Service)
			if !sel.Matches(labels.Set(svc.Labels)) {
				continue
			}
			job := svc.Name
			if v := svc.Labels[sm.Spec.JobLabel]; sm.Spec.JobLabel != "" && v != "" {
				job = v
			}
			jobs = append(jobs, job)
		}
	}
	sort.Strings(jobs)
	return jobs
}

// wantJobs are the job names files/prometheus-rules.yaml selects on.
const wantJobs = "gatehouse-auth,gatehouse-user"

// envSet reports whether a container sets a variable at all (plain, from a
// Secret or ConfigMap key, or through envFrom of a ConfigMap).
func envSet(objs []Object, c *corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return true
		}
	}
	_, ok := envValue(objs, c, name)
	return ok
}

// checkServiceMounts: the paths the services write or read from their
// configuration are volumes of the right kind, since the root filesystem is
// read-only.
func checkServiceMounts(t *testing.T, objs []Object, where, svc string, spec *corev1.PodSpec, c *corev1.Container) {
	t.Helper()
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	// mountAt returns the mount whose path is dir itself (exact) or holds it.
	mountAt := func(dir string, exact bool) (corev1.VolumeMount, corev1.Volume, bool) {
		var best corev1.VolumeMount
		for _, vm := range c.VolumeMounts {
			p := strings.TrimSuffix(vm.MountPath, "/")
			if p == dir || !exact && strings.HasPrefix(dir, p+"/") && len(p) > len(best.MountPath) {
				best = vm
			}
		}
		return best, volumes[best.Name], best.Name != ""
	}
	if _, _, ok := mountAt("/tmp", true); !ok {
		t.Errorf("%s: /tmp must be a writable volume (the root filesystem is read-only)", where)
	}
	if url, _ := envValue(objs, c, "DATABASE_URL"); strings.HasPrefix(url, "sqlite://") {
		file := strings.TrimPrefix(url, "sqlite://")
		vm, v, ok := mountAt(filepath.Dir(file), false)
		switch {
		case !ok:
			t.Errorf("%s: DATABASE_URL=%s is on no volume (the root filesystem is read-only)", where, url)
		case vm.ReadOnly:
			t.Errorf("%s: DATABASE_URL=%s is on a read-only mount", where, url)
		case v.PersistentVolumeClaim == nil:
			t.Errorf("%s: DATABASE_URL=%s is on volume %s, which is not a PersistentVolumeClaim: the data would not survive the pod", where, url, vm.Name)
		}
	}
	secretDir := func(variable, dir string) {
		vm, v, ok := mountAt(dir, true)
		switch {
		case !ok:
			t.Errorf("%s: %s=%s is not a mount point", where, variable, dir)
		case v.Secret == nil && v.Projected == nil:
			t.Errorf("%s: %s=%s should be a Secret volume, is %s", where, variable, dir, vm.Name)
		case vm.SubPath != "":
			t.Errorf("%s: %s=%s is a subPath mount, which never sees an updated Secret", where, variable, dir)
		}
	}
	if svc == "auth" && !envSet(objs, c, "JWT_SECRET") {
		dir, ok := envValue(objs, c, "JWT_SIGNING_KEYS_DIR")
		if !ok || dir == "" {
			t.Errorf("%s: neither JWT_SIGNING_KEYS_DIR nor JWT_SECRET is set", where)
		} else {
			secretDir("JWT_SIGNING_KEYS_DIR", strings.TrimSuffix(dir, "/"))
		}
	}
	if f, ok := envValue(objs, c, "BOOTSTRAP_ADMIN_PASSWORD_FILE"); ok && f != "" {
		secretDir("BOOTSTRAP_ADMIN_PASSWORD_FILE's directory", filepath.Dir(f))
	}
}
