package validate

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
)

// MonitoringAPIVersions are what discovery reports on a cluster with the
// prometheus-operator's CRDs: the group/version and group/version/Kind forms
// a chart may test with .Capabilities.APIVersions.Has.
var MonitoringAPIVersions = []string{
	"monitoring.coreos.com/v1",
	"monitoring.coreos.com/v1/ServiceMonitor",
	"monitoring.coreos.com/v1/PrometheusRule",
	"monitoring.coreos.com/v1/PodMonitor",
}

// CertManagerAPIVersions are what discovery reports on a cluster with
// cert-manager installed.
var CertManagerAPIVersions = []string{
	"cert-manager.io/v1",
	"cert-manager.io/v1/Certificate",
	"cert-manager.io/v1/Issuer",
	"cert-manager.io/v1/ClusterIssuer",
}

// RenderOptions choose the release, values and cluster a chart renders for.
type RenderOptions struct {
	ReleaseName string
	Namespace   string
	// ValuesFiles are merged left to right over the chart's values.yaml,
	// as `helm install -f a.yaml -f b.yaml` does.
	ValuesFiles []string
	// Values are merged over the files, as --set is.
	Values map[string]any
	// Monitoring adds the prometheus-operator's API versions to the
	// capabilities; without it the cluster looks like one without the CRDs.
	Monitoring bool
	// CertManager adds cert-manager's API versions to the capabilities.
	CertManager bool
}

// ChartRender is what `helm install --dry-run` would send to the cluster.
type ChartRender struct {
	Manifests []Object // ordinary resources
	Hooks     []Object // hook resources, including `helm test` pods
	Notes     string
}

// All returns manifests and hooks together.
func (r *ChartRender) All() []Object {
	return append(append([]Object(nil), r.Manifests...), r.Hooks...)
}

// Capabilities returns the capabilities a render runs with.
func Capabilities(monitoring bool) *chartutil.Capabilities {
	caps := chartutil.DefaultCapabilities.Copy()
	versions := append(chartutil.VersionSet(nil), caps.APIVersions...)
	if monitoring {
		versions = append(versions, MonitoringAPIVersions...)
	}
	caps.APIVersions = versions
	return caps
}

// ReadValues merges values files left to right (maps merge deeply, anything
// else is replaced), as helm's -f flags do.
func ReadValues(files []string) (map[string]any, error) {
	vals := map[string]any{}
	for _, f := range files {
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			return nil, fmt.Errorf("values file %s: %w", f, err)
		}
		vals = mergeMaps(vals, v)
	}
	return vals, nil
}

func mergeMaps(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if vm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = mergeMaps(am, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// RenderChart renders a chart directory the way `helm install --dry-run`
// (client-only, i.e. `helm template`) does: kubeVersion check, dependency
// processing, values coalesced and validated against values.schema.json,
// templates rendered, NOTES.txt set aside, hooks separated from manifests.
// Every resulting object is then decoded strictly into its Go type.
func RenderChart(chartDir string, opts RenderOptions) (*ChartRender, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	vals, err := ReadValues(opts.ValuesFiles)
	if err != nil {
		return nil, err
	}
	vals = mergeMaps(vals, opts.Values)
	caps := Capabilities(opts.Monitoring)
	if opts.CertManager {
		caps.APIVersions = append(caps.APIVersions, CertManagerAPIVersions...)
	}
	if ch.Metadata.KubeVersion != "" && !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart requires kubeVersion %s, incompatible with Kubernetes %s", ch.Metadata.KubeVersion, caps.KubeVersion)
	}
	if err := chartutil.ProcessDependenciesWithMerge(ch, vals); err != nil {
		return nil, fmt.Errorf("dependencies: %w", err)
	}
	relOpts := chartutil.ReleaseOptions{Name: opts.ReleaseName, Namespace: opts.Namespace, Revision: 1, IsInstall: true}
	top, err := chartutil.ToRenderValuesWithSchemaValidation(ch, vals, relOpts, caps, false)
	if err != nil {
		return nil, err
	}
	files, err := (&engine.Engine{}).Render(ch, top)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	out := &ChartRender{}
	for name, content := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			if name == path.Join(ch.Name(), "templates", "NOTES.txt") {
				out.Notes = content
			}
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, caps.APIVersions, releaseutil.InstallOrder)
	if err != nil {
		return nil, fmt.Errorf("sort manifests: %w", err)
	}
	var errs []error
	for _, m := range manifests {
		o, err := DecodeStrict(m.Name, []byte(m.Content))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Manifests = append(out.Manifests, o)
	}
	for _, h := range hooks {
		o, err := DecodeStrict(h.Path+" (hook "+h.Name+")", []byte(h.Manifest))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Hooks = append(out.Hooks, o)
	}
	return out, errors.Join(errs...)
}

// LintChart runs helm's linter with `helm lint --strict` semantics: any
// message of warning severity or above is an error. Values files are merged
// as with `helm lint -f`.
func LintChart(chartDir string, valuesFiles []string) error {
	vals, err := ReadValues(valuesFiles)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(chartDir)
	if err != nil {
		return err
	}
	linter := lint.AllWithKubeVersionAndSchemaValidation(abs, vals, "gatehouse", nil, false)
	var errs []error
	for _, msg := range linter.Messages {
		if msg.Severity >= support.WarningSev {
			errs = append(errs, msg)
		}
	}
	return errors.Join(errs...)
}

// LoadChart loads a chart directory.
func LoadChart(chartDir string) (*chart.Chart, error) {
	return loader.Load(chartDir)
}

// ValidateValuesFile checks one values file, merged over the chart's
// defaults, against the chart's values.schema.json: the check `helm install`
// runs before rendering.
func ValidateValuesFile(ch *chart.Chart, file string) error {
	vals, err := ReadValues([]string{file})
	if err != nil {
		return err
	}
	coalesced, err := chartutil.CoalesceValues(ch, vals)
	if err != nil {
		return err
	}
	return chartutil.ValidateAgainstSchema(ch, coalesced)
}
