package validate

// The checks are only worth something if they fail on broken input: each
// test here feeds a deliberately broken manifest, chart or kustomization and
// requires the failure.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo
spec:
  replicas: 1
  selector:
    matchLabels: {app: demo}
  template:
    metadata:
      labels: {app: demo}
    spec:
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: demo
          image: example.com/demo:1.0
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
`

func TestStrictDecoding(t *testing.T) {
	if _, err := DecodeStrict("good", []byte(goodDeployment)); err != nil {
		t.Fatalf("a valid Deployment must decode: %v", err)
	}
	broken := map[string]string{
		"unknown field": strings.Replace(goodDeployment, "  replicas: 1", "  replicas: 1\n  replica: 1", 1),
		"unknown nested field": strings.Replace(goodDeployment, "image: example.com/demo:1.0",
			"image: example.com/demo:1.0\n          imagePullPolicyy: Always", 1),
		"wrong case":        strings.Replace(goodDeployment, "matchLabels", "MatchLabels", 1),
		"wrong type":        strings.Replace(goodDeployment, "replicas: 1", `replicas: "two"`, 1),
		"list for a map":    strings.Replace(goodDeployment, "labels: {app: demo}", "labels: [app]", 1),
		"duplicate field":   strings.Replace(goodDeployment, "  replicas: 1", "  replicas: 1\n  replicas: 2", 1),
		"unknown kind":      strings.Replace(goodDeployment, "kind: Deployment", "kind: Deploymnet", 1),
		"unknown version":   strings.Replace(goodDeployment, "apps/v1", "apps/v1beta9", 1),
		"no kind":           strings.Replace(goodDeployment, "kind: Deployment\n", "", 1),
		"no name":           strings.Replace(goodDeployment, "  name: demo\n", "  labels: {a: b}\n", 1),
		"invalid YAML":      goodDeployment + "  : : :\n",
		"port out of range": strings.Replace(goodDeployment, "image: example.com/demo:1.0", "image: example.com/demo:1.0\n          ports: [{containerPort: 99999999999}]", 1),
		"ServiceMonitor unknown field": `apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: demo}
spec:
  selector: {matchLabels: {app: demo}}
  endpoint:
    - port: http
`,
		"PrometheusRule wrong type": `apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: demo}
spec:
  groups:
    - name: demo
      rules:
        - alert: Demo
          expr: up == 0
          labels: [critical]
`,
		"Certificate unknown field": `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: demo}
spec:
  secretName: demo-tls
  dnsName: [demo]
  issuerRef: {name: ca}
`,
		"CRD kind not in the scheme": `apiVersion: monitoring.coreos.com/v1alpha1
kind: ScrapeConfig
metadata: {name: demo}
spec: {}
`,
	}
	for name, doc := range broken {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeStrict(name, []byte(doc)); err == nil {
				t.Errorf("decoded without error:\n%s", doc)
			} else {
				t.Logf("rejected as expected: %v", err)
			}
		})
	}
}

func TestPodSecurityRestricted(t *testing.T) {
	good, err := DecodeStrict("good", []byte(goodDeployment))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckAllRestricted([]Object{good}); err != nil {
		t.Fatalf("a compliant pod must pass: %v", err)
	}
	violations := map[string]string{
		"runAsNonRoot missing":     strings.Replace(goodDeployment, "        runAsNonRoot: true\n", "", 1),
		"runs as root":             strings.Replace(goodDeployment, "        runAsNonRoot: true\n", "        runAsNonRoot: true\n        runAsUser: 0\n", 1),
		"seccomp missing":          strings.Replace(goodDeployment, "        seccompProfile: {type: RuntimeDefault}\n", "", 1),
		"privilege escalation":     strings.Replace(goodDeployment, "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", 1),
		"capabilities not dropped": strings.Replace(goodDeployment, "capabilities: {drop: [ALL]}", "capabilities: {add: [NET_ADMIN], drop: [ALL]}", 1),
		"privileged":               strings.Replace(goodDeployment, "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: false\n            privileged: true", 1),
		"hostPath volume": strings.Replace(goodDeployment, "      containers:",
			"      volumes: [{name: h, hostPath: {path: /}}]\n      containers:", 1),
		"hostNetwork": strings.Replace(goodDeployment, "      containers:", "      hostNetwork: true\n      containers:", 1),
		"init container unhardened": strings.Replace(goodDeployment, "      containers:",
			"      initContainers: [{name: init, image: example.com/init:1.0}]\n      containers:", 1),
		"bare pod (helm test hook)": `apiVersion: v1
kind: Pod
metadata:
  name: demo-test
  annotations: {helm.sh/hook: test}
spec:
  restartPolicy: Never
  containers: [{name: t, image: example.com/t:1.0}]
`,
		"job": `apiVersion: batch/v1
kind: Job
metadata: {name: demo}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: j, image: example.com/j:1.0}]
`,
	}
	for name, doc := range violations {
		t.Run(name, func(t *testing.T) {
			o, err := DecodeStrict(name, []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckAllRestricted([]Object{o}); err == nil {
				t.Errorf("passed Pod Security restricted:\n%s", doc)
			} else {
				t.Logf("rejected as expected: %v", err)
			}
		})
	}
}

func TestReferenceChecks(t *testing.T) {
	service := `apiVersion: v1
kind: Service
metadata: {name: demo}
spec:
  selector: {app: demo}
  ports: [{name: http, port: 80, targetPort: http}]
`
	withPort := strings.Replace(goodDeployment, "image: example.com/demo:1.0", "image: example.com/demo:1.0\n          ports: [{name: http, containerPort: 8080}]", 1)
	decode := func(docs ...string) []Object {
		var objs []Object
		for i, d := range docs {
			o, err := DecodeStrict(string(rune('a'+i)), []byte(d))
			if err != nil {
				t.Fatal(err)
			}
			objs = append(objs, o)
		}
		return objs
	}
	if err := CheckReferences(decode(withPort, service), nil); err != nil {
		t.Fatalf("consistent objects must pass: %v", err)
	}
	broken := map[string][]string{
		"selector does not match template": {strings.Replace(withPort, "matchLabels: {app: demo}", "matchLabels: {app: other}", 1), service},
		"service selects nothing":          {withPort, strings.Replace(service, "selector: {app: demo}", "selector: {app: nothing}", 1)},
		"target port not named":            {goodDeployment, service},
		"missing secret": {strings.Replace(withPort, "      containers:",
			"      volumes: [{name: s, secret: {secretName: absent}}]\n      containers:", 1), service},
		"volume mounted by no container": {strings.Replace(withPort, "      containers:",
			"      volumes: [{name: tmp, emptyDir: {}}]\n      containers:", 1), service},
		"mount of undefined volume": {strings.Replace(withPort, "          ports:", "          volumeMounts: [{name: nope, mountPath: /x}]\n          ports:", 1), service},
		"invalid label value":       {strings.Replace(withPort, "labels: {app: demo}", "labels: {app: demo, bad: \"no spaces allowed\"}", 1), service},
		"port name too long":        {strings.Replace(withPort, "name: http, containerPort", "name: this-name-is-too-long, containerPort", 1), service},
	}
	for name, docs := range broken {
		t.Run(name, func(t *testing.T) {
			if err := CheckReferences(decode(docs...), nil); err == nil {
				t.Errorf("passed the reference checks")
			} else {
				t.Logf("rejected as expected: %v", err)
			}
		})
	}
}

// writeChart writes a minimal chart with the given templates into a
// temporary directory.
func writeChart(t *testing.T, templates map[string]string, schema string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "demo")
	files := map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: demo\nversion: 0.1.0\nappVersion: \"1.0\"\n",
		"values.yaml": "replicas: 1\n",
	}
	if schema != "" {
		files["values.schema.json"] = schema
	}
	for name, content := range templates {
		files[filepath.Join("templates", name)] = content
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestHelmRenderRejects runs the chart path end to end on small charts.
func TestHelmRenderRejects(t *testing.T) {
	good := strings.Replace(goodDeployment, "replicas: 1", "replicas: {{ .Values.replicas }}", 1)
	if _, err := RenderChart(writeChart(t, map[string]string{"d.yaml": good}, ""), RenderOptions{ReleaseName: "r", Namespace: "n"}); err != nil {
		t.Fatalf("a valid chart must render: %v", err)
	}
	broken := map[string]string{
		"unknown field":  strings.Replace(good, "  replicas:", "  replica: 1\n  replicas:", 1),
		"wrong type":     strings.Replace(good, "{{ .Values.replicas }}", `"{{ .Values.replicas }}"`, 1),
		"unknown kind":   strings.Replace(good, "kind: Deployment", "kind: Deploymnet", 1),
		"template error": strings.Replace(good, "{{ .Values.replicas }}", "{{ .Values.replicas | nosuchfunc }}", 1),
		"hook with unknown field": strings.Replace(good, "metadata:\n  name: demo\n",
			"metadata:\n  name: demo\n  annotations: {helm.sh/hook: test}\n  nickname: x\n", 1),
	}
	for name, tmpl := range broken {
		t.Run(name, func(t *testing.T) {
			_, err := RenderChart(writeChart(t, map[string]string{"d.yaml": tmpl}, ""), RenderOptions{ReleaseName: "r", Namespace: "n"})
			if err == nil {
				t.Errorf("rendered without error")
			} else {
				t.Logf("rejected as expected: %v", err)
			}
		})
	}
	t.Run("schema", func(t *testing.T) {
		schema := `{"$schema": "https://json-schema.org/draft-07/schema#", "type": "object",
			"properties": {"replicas": {"type": "integer", "minimum": 1}}, "additionalProperties": false}`
		dir := writeChart(t, map[string]string{"d.yaml": good}, schema)
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(bad, []byte("replicas: 0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		ch, err := LoadChart(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateValuesFile(ch, bad); err == nil {
			t.Errorf("schema accepted replicas: 0")
		}
		if _, err := RenderChart(dir, RenderOptions{ReleaseName: "r", Namespace: "n", ValuesFiles: []string{bad}}); err == nil {
			t.Errorf("render accepted values the schema rejects")
		}
	})
	t.Run("lint --strict", func(t *testing.T) {
		// A template whose value is missing: a lint warning, so --strict fails.
		dir := writeChart(t, map[string]string{"d.yaml": strings.Replace(good, "name: demo\nspec", "name: {{ .Values.missing.name }}\nspec", 1)}, "")
		if err := LintChart(dir, nil); err == nil {
			t.Errorf("lint --strict passed a chart with a nil-pointer template")
		}
	})
}

func TestKustomizeRejects(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("kustomization.yaml", "resources: [d.yaml]\n")
	write("d.yaml", goodDeployment)
	if _, _, err := RenderKustomization(dir); err != nil {
		t.Fatalf("a valid kustomization must render: %v", err)
	}
	write("d.yaml", strings.Replace(goodDeployment, "  replicas: 1", "  replicas: 1\n  replica: 1", 1))
	if _, _, err := RenderKustomization(dir); err == nil {
		t.Errorf("a kustomization with an unknown field rendered without error")
	}
	write("d.yaml", goodDeployment)
	write("kustomization.yaml", "resources: [d.yaml, ../outside.yaml]\n")
	if _, _, err := RenderKustomization(dir); err == nil {
		t.Errorf("a kustomization reading outside its root rendered (kubectl kustomize refuses it)")
	}
}
