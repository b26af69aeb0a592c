package validate

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/template"

	"helm.sh/helm/v3/pkg/strvals"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// The skaffold.yaml fields this repository uses, mirrored from skaffold's
// published v4beta13 JSON schema (names and types as there). Decoding is
// strict: a field skaffold.yaml uses that is not mirrored here fails the
// test, so adding one means checking the schema first. skaffold itself is
// not available here (its module is not on the Go proxy), so this is as far
// as offline validation goes.
type skaffoldConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Build       skaffoldBuild         `json:"build"`
	Manifests   *skaffoldManifests    `json:"manifests,omitempty"`
	Deploy      skaffoldDeploy        `json:"deploy"`
	PortForward []skaffoldPortForward `json:"portForward,omitempty"`
	Profiles    []skaffoldProfile     `json:"profiles,omitempty"`
}

type skaffoldBuild struct {
	TagPolicy *struct {
		InputDigest *struct{} `json:"inputDigest,omitempty"`
		GitCommit   *struct {
			Variant string `json:"variant,omitempty"`
		} `json:"gitCommit,omitempty"`
		Sha256 *struct{} `json:"sha256,omitempty"`
	} `json:"tagPolicy,omitempty"`
	Local *struct {
		Push        *bool `json:"push,omitempty"`
		UseBuildkit *bool `json:"useBuildkit,omitempty"`
		Concurrency *int  `json:"concurrency,omitempty"`
	} `json:"local,omitempty"`
	Artifacts []struct {
		Image   string `json:"image"`
		Context string `json:"context,omitempty"`
		Docker  *struct {
			Dockerfile string            `json:"dockerfile,omitempty"`
			Target     string            `json:"target,omitempty"`
			BuildArgs  map[string]string `json:"buildArgs,omitempty"`
		} `json:"docker,omitempty"`
	} `json:"artifacts,omitempty"`
}

type skaffoldManifests struct {
	Kustomize *struct {
		Paths     []string `json:"paths,omitempty"`
		BuildArgs []string `json:"buildArgs,omitempty"`
	} `json:"kustomize,omitempty"`
	Hooks *struct {
		Before []struct {
			Host *struct {
				Command []string `json:"command"`
				OS      []string `json:"os,omitempty"`
				Dir     string   `json:"dir,omitempty"`
			} `json:"host,omitempty"`
		} `json:"before,omitempty"`
	} `json:"hooks,omitempty"`
}

type skaffoldHelmRelease struct {
	Name                  string            `json:"name"`
	ChartPath             string            `json:"chartPath,omitempty"`
	ValuesFiles           []string          `json:"valuesFiles,omitempty"`
	Namespace             string            `json:"namespace,omitempty"`
	SetValues             map[string]any    `json:"setValues,omitempty"`
	SetValueTemplates     map[string]string `json:"setValueTemplates,omitempty"`
	CreateNamespace       *bool             `json:"createNamespace,omitempty"`
	Wait                  bool              `json:"wait,omitempty"`
	SkipBuildDependencies bool              `json:"skipBuildDependencies,omitempty"`
	Overrides             map[string]any    `json:"overrides,omitempty"`
}

type skaffoldDeploy struct {
	StatusCheckDeadlineSeconds int `json:"statusCheckDeadlineSeconds,omitempty"`
	Helm                       *struct {
		Releases []skaffoldHelmRelease `json:"releases,omitempty"`
	} `json:"helm,omitempty"`
	Kubectl *struct {
		DefaultNamespace string `json:"defaultNamespace,omitempty"`
	} `json:"kubectl,omitempty"`
}

type skaffoldPortForward struct {
	ResourceType string             `json:"resourceType"`
	ResourceName string             `json:"resourceName"`
	Namespace    string             `json:"namespace,omitempty"`
	Port         intstr.IntOrString `json:"port"`
	LocalPort    int                `json:"localPort,omitempty"`
}

type skaffoldProfile struct {
	Name    string `json:"name"`
	Patches []struct {
		Op    string `json:"op,omitempty"`
		Path  string `json:"path"`
		From  string `json:"from,omitempty"`
		Value any    `json:"value,omitempty"`
	} `json:"patches,omitempty"`
	Build     *skaffoldBuild     `json:"build,omitempty"`
	Manifests *skaffoldManifests `json:"manifests,omitempty"`
	Deploy    *skaffoldDeploy    `json:"deploy,omitempty"`
}

func loadSkaffold(t *testing.T) skaffoldConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "skaffold.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg skaffoldConfig
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		t.Fatalf("skaffold.yaml does not match the v4beta13 fields mirrored in skaffold_test.go: %v", err)
	}
	return cfg
}

// skaffoldTemplateName is how an artifact's image name appears in a
// setValueTemplates variable: '.', '/', '-' and ':' become '_'.
func skaffoldTemplateName(image string) string {
	return strings.NewReplacer(".", "_", "/", "_", "-", "_", ":", "_").Replace(image)
}

var imageVar = regexp.MustCompile(`\.IMAGE_(FULLY_QUALIFIED|REPO_NO_DOMAIN|REPO|TAG|DIGEST|DOMAIN)_(\w+)`)

func TestSkaffoldConfig(t *testing.T) {
	root := repoRoot(t)
	cfg := loadSkaffold(t)
	if cfg.APIVersion != "skaffold/v4beta13" || cfg.Kind != "Config" {
		t.Errorf("apiVersion/kind %s/%s, want skaffold/v4beta13 Config", cfg.APIVersion, cfg.Kind)
	}
	if l := cfg.Build.Local; l == nil || l.Push == nil || *l.Push {
		t.Errorf("build.local.push must be false: images go to the local daemon (and kind), no registry")
	}
	images := map[string]bool{}
	for _, a := range cfg.Build.Artifacts {
		images[a.Image] = true
		ctx := filepath.Join(root, a.Context)
		if st, err := os.Stat(ctx); err != nil || !st.IsDir() {
			t.Errorf("artifact %s: context %q is not a directory", a.Image, a.Context)
		}
		if a.Docker == nil || a.Docker.Dockerfile == "" {
			t.Errorf("artifact %s: want a docker build with an explicit dockerfile", a.Image)
			continue
		}
		if _, err := os.Stat(filepath.Join(ctx, a.Docker.Dockerfile)); err != nil {
			t.Errorf("artifact %s: %v", a.Image, err)
		}
	}
	for _, want := range []string{"ghcr.io/gatehouse-dev/gatehouse-user", "ghcr.io/gatehouse-dev/gatehouse-auth"} {
		if !images[want] {
			t.Errorf("no artifact builds %s", want)
		}
	}
	if cfg.Deploy.Helm == nil || len(cfg.Deploy.Helm.Releases) != 1 {
		t.Fatalf("want one helm release in deploy.helm")
	}
	rel := cfg.Deploy.Helm.Releases[0]
	if _, err := os.Stat(filepath.Join(root, rel.ChartPath, "Chart.yaml")); err != nil {
		t.Errorf("release %s: chartPath: %v", rel.Name, err)
	}
	for _, f := range rel.ValuesFiles {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("release %s: valuesFiles: %v", rel.Name, err)
		}
	}

	// setValueTemplates: Go templates over skaffold's image variables, each
	// naming a built artifact. Execute them with made-up build results and
	// render the chart the way skaffold's `helm install` would (overrides as
	// a values file, the templates as --set-string) to see the images land.
	built := map[string]string{}
	for img := range images {
		n := skaffoldTemplateName(img)
		built["IMAGE_REPO_"+n] = "registry.test/" + img[strings.Index(img, "/")+1:]
		built["IMAGE_TAG_"+n] = "skaffold-0123abcd"
	}
	setVals := map[string]any{}
	for key, tmpl := range rel.SetValueTemplates {
		for _, m := range imageVar.FindAllStringSubmatch(tmpl, -1) {
			found := false
			for img := range images {
				found = found || skaffoldTemplateName(img) == m[2]
			}
			if !found {
				t.Errorf("setValueTemplates %s: %s names no artifact", key, m[0])
			}
		}
		tp, err := template.New(key).Option("missingkey=error").Parse(tmpl)
		if err != nil {
			t.Errorf("setValueTemplates %s: %v", key, err)
			continue
		}
		var out bytes.Buffer
		if err := tp.Execute(&out, built); err != nil {
			t.Errorf("setValueTemplates %s: %v", key, err)
			continue
		}
		if err := strvals.ParseIntoString(key+"="+out.String(), setVals); err != nil {
			t.Errorf("setValueTemplates %s: %v", key, err)
		}
	}
	render, err := RenderChart(filepath.Join(root, rel.ChartPath), RenderOptions{
		ReleaseName: rel.Name, Namespace: rel.Namespace,
		ValuesFiles: prefixAll(root, rel.ValuesFiles),
		Values:      mergeMaps(rel.Overrides, setVals),
	})
	if err != nil {
		t.Fatalf("the chart does not render with skaffold's values: %v", err)
	}
	for svc, d := range serviceDeployments(t, render.Manifests) {
		c, _ := serviceContainer(&d.Spec.Template.Spec)
		n := skaffoldTemplateName("ghcr.io/gatehouse-dev/gatehouse-" + svc)
		if want := built["IMAGE_REPO_"+n] + ":" + built["IMAGE_TAG_"+n]; c.Image != want {
			t.Errorf("%s runs %q; with skaffold's values it must run the image just built, %q", d.Name, c.Image, want)
		}
	}
	if err := CheckAllRestricted(render.All()); err != nil {
		t.Error(err)
	}
	checkPortForwards(t, "helm release "+rel.Name, cfg.PortForward, render.Manifests, rel.Namespace)
}

func prefixAll(dir string, files []string) []string {
	var out []string
	for _, f := range files {
		out = append(out, filepath.Join(dir, f))
	}
	return out
}

// checkPortForwards: every port-forward names a Service and port that the
// deployment creates.
func checkPortForwards(t *testing.T, what string, pfs []skaffoldPortForward, objs []Object, namespace string) {
	t.Helper()
	for _, pf := range pfs {
		if !strings.EqualFold(pf.ResourceType, "service") {
			continue
		}
		found := false
		for _, o := range Find(objs, "Service", pf.ResourceName) {
			svc := o.Obj.(*corev1.Service)
			if ns := svc.Namespace; ns != "" && ns != pf.Namespace {
				continue
			}
			for _, p := range svc.Spec.Ports {
				found = found || p.Port == pf.Port.IntVal && pf.Port.Type == intstr.Int || p.Name == pf.Port.StrVal && pf.Port.Type == intstr.String
			}
		}
		if !found {
			t.Errorf("%s: portForward %s/%s:%s has no such Service port in namespace %s", what, pf.ResourceType, pf.ResourceName, pf.Port.String(), namespace)
		}
	}
}

func TestSkaffoldKustomizeProfile(t *testing.T) {
	root := repoRoot(t)
	cfg := loadSkaffold(t)
	var prof *skaffoldProfile
	for i := range cfg.Profiles {
		if cfg.Profiles[i].Name == "kustomize" {
			prof = &cfg.Profiles[i]
		}
	}
	if prof == nil {
		t.Fatal("no profile named kustomize")
	}
	// The profile must replace the helm deployer, not run next to it.
	removesHelm := false
	for _, p := range prof.Patches {
		removesHelm = removesHelm || p.Op == "remove" && p.Path == "/deploy/helm"
	}
	if !removesHelm {
		t.Errorf("profile kustomize must remove /deploy/helm (profiles merge into the base config)")
	}
	if prof.Deploy == nil || prof.Deploy.Kubectl == nil {
		t.Errorf("profile kustomize must deploy with kubectl")
	}
	if prof.Manifests == nil || prof.Manifests.Kustomize == nil || len(prof.Manifests.Kustomize.Paths) == 0 {
		t.Fatal("profile kustomize has no manifests.kustomize.paths")
	}
	for _, p := range prof.Manifests.Kustomize.Paths {
		if _, err := os.Stat(filepath.Join(root, p, "kustomization.yaml")); err != nil {
			t.Errorf("kustomize path %s: %v", p, err)
			continue
		}
		rel, err := filepath.Rel(filepath.Join(root, "k8s"), filepath.Join(root, p))
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("kustomize path %s is not under k8s/", p)
			continue
		}
		objs := renderTree(t, rel)
		checkPortForwards(t, "profile kustomize", cfg.PortForward, objs, "gatehouse")
		// skaffold swaps in the built images by repository, whatever the tag.
		for img := range map[string]bool{"ghcr.io/gatehouse-dev/gatehouse-user": true, "ghcr.io/gatehouse-dev/gatehouse-auth": true} {
			used := false
			for _, pt := range PodTemplates(objs) {
				for _, c := range pt.Spec.Containers {
					used = used || strings.HasPrefix(c.Image, img+":")
				}
			}
			if !used {
				t.Errorf("%s does not run %s, so skaffold would not deploy what it built", p, img)
			}
		}
	}
	if h := prof.Manifests.Hooks; h != nil {
		for _, b := range h.Before {
			if b.Host == nil || len(b.Host.Command) == 0 {
				t.Errorf("empty render hook")
				continue
			}
			cmd := b.Host.Command
			if len(cmd) > 2 && cmd[0] == "go" && cmd[1] == "run" {
				if _, err := os.Stat(filepath.Join(root, cmd[2])); err != nil {
					t.Errorf("render hook %v: %v", cmd, err)
				}
			}
		}
	}
}
