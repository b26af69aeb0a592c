package validate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
)

// TestKustomizeBaseMatchesChart: k8s/base with the tls component and the
// chart's defaults (both SQLite, one replica, TLS on) run the services with
// the same security contexts, probes, ports, grace period, rollout strategy,
// mounts and TLS settings, so the two ways to deploy cannot drift apart.
func TestKustomizeBaseMatchesChart(t *testing.T) {
	chart, err := RenderChart(chartDir(t), RenderOptions{ReleaseName: "gatehouse", Namespace: "gatehouse"})
	if err != nil {
		t.Fatal(err)
	}
	fromChart := serviceDeployments(t, chart.Manifests)
	baseObjs := renderTree(t, "overlays/tls-parity")
	fromBase := serviceDeployments(t, baseObjs)
	chartEnv, baseEnv := configEnv(t, chart.Manifests), configEnv(t, baseObjs)
	if c, b := chartEnv["user"]["JWKS_URL"], baseEnv["user"]["JWKS_URL"]; !strings.HasPrefix(c, "https://") || !strings.HasPrefix(b, "https://") {
		t.Errorf("user JWKS_URL: chart %q, k8s/base+tls %q; both must be https", c, b)
	}
	for _, svc := range []string{"user", "auth"} {
		for _, key := range []string{"HEALTH_ADDR", "METRICS_ADDR", "TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE", "TLS_CLIENT_AUTH", "SERVICE_PEER_NAMES"} {
			if chartEnv[svc][key] != baseEnv[svc][key] {
				t.Errorf("%s %s: chart %q, k8s/base+tls %q", svc, key, chartEnv[svc][key], baseEnv[svc][key])
			}
		}
	}
	opts := []cmp.Option{cmpopts.EquateEmpty()}
	for _, svc := range []string{"user", "auth"} {
		h, k := fromChart[svc], fromBase[svc]
		if h == nil || k == nil {
			continue
		}
		hs, ks := &h.Spec.Template.Spec, &k.Spec.Template.Spec
		hc, _ := serviceContainer(hs)
		kc, _ := serviceContainer(ks)
		compare := func(what string, chartVal, baseVal any) {
			if d := cmp.Diff(chartVal, baseVal, opts...); d != "" {
				t.Errorf("%s %s differs between the chart (-) and k8s/base (+):\n%s", svc, what, d)
			}
		}
		compare("pod securityContext", hs.SecurityContext, ks.SecurityContext)
		compare("container securityContext", hc.SecurityContext, kc.SecurityContext)
		compare("automountServiceAccountToken", hs.AutomountServiceAccountToken, ks.AutomountServiceAccountToken)
		compare("enableServiceLinks", hs.EnableServiceLinks, ks.EnableServiceLinks)
		compare("terminationGracePeriodSeconds", hs.TerminationGracePeriodSeconds, ks.TerminationGracePeriodSeconds)
		compare("startupProbe", hc.StartupProbe, kc.StartupProbe)
		compare("readinessProbe", hc.ReadinessProbe, kc.ReadinessProbe)
		compare("livenessProbe", hc.LivenessProbe, kc.LivenessProbe)
		compare("ports", hc.Ports, kc.Ports)
		compare("strategy", h.Spec.Strategy, k.Spec.Strategy)
		compare("resources", hc.Resources, kc.Resources)
		compare("imagePullPolicy", hc.ImagePullPolicy, kc.ImagePullPolicy)
		compare("image", hc.Image, kc.Image)
		compare("volumeMounts' paths", mountPaths(hc), mountPaths(kc))
	}
}

func mountPaths(c *corev1.Container) map[string]bool {
	m := map[string]bool{}
	for _, vm := range c.VolumeMounts {
		m[vm.MountPath] = vm.ReadOnly
	}
	return m
}

// configEnv maps each service to the settings of its ConfigMap.
func configEnv(t *testing.T, objs []Object) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{"user": {}, "auth": {}}
	for _, o := range Find(objs, "ConfigMap", "") {
		cm := o.Obj.(*corev1.ConfigMap)
		for svc := range out {
			if strings.Contains(cm.Name, "-"+svc) {
				for k, v := range cm.Data {
					out[svc][k] = v
				}
			}
		}
	}
	return out
}
