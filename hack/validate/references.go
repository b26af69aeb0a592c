package validate

import (
	"errors"
	"fmt"
	"sort"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// CheckReferences finds what typed decoding cannot: mistakes the API server
// rejects on apply, or that only show once pods run.
//
//   - names are DNS-1123 (labels for Services), label keys and values valid;
//   - a workload's selector matches its own pod template (apps/v1 and batch
//     reject a mismatch);
//   - every Service, PodDisruptionBudget and ServiceMonitor selects something
//     in the same render, and named ports they use exist there;
//   - a probe's named port is a port of its container;
//   - ConfigMaps, Secrets, PVCs and ServiceAccounts that pods use, and the
//     targets of HorizontalPodAutoscalers, are part of the render, unless
//     external(kind, name) says the operator provides them.
func CheckReferences(objs []Object, external func(kind, name string) bool) error {
	if external == nil {
		external = func(string, string) bool { return false }
	}
	var errs []error
	fail := func(o Object, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s [%s]: %s", o, o.Source, fmt.Sprintf(format, args...)))
	}
	have := map[string]bool{}
	for _, o := range objs {
		have[o.GVK.Kind+"/"+o.Meta().GetName()] = true
	}
	pods := PodTemplates(objs)

	for _, o := range objs {
		m := o.Meta()
		nameErrs := validation.IsDNS1123Subdomain(m.GetName())
		if o.GVK.Kind == "Service" || o.GVK.Kind == "Namespace" {
			nameErrs = validation.IsDNS1123Label(m.GetName())
		}
		for _, e := range nameErrs {
			fail(o, "metadata.name %q: %s", m.GetName(), e)
		}
		errs = append(errs, checkLabels(o, m.GetLabels(), "metadata.labels")...)
		for k := range m.GetAnnotations() {
			for _, e := range validation.IsQualifiedName(k) {
				fail(o, "annotation key %q: %s", k, e)
			}
		}
	}

	for _, p := range pods {
		errs = append(errs, checkLabels(p.Owner, p.Meta.Labels, "pod template labels")...)
		if sel := workloadSelector(p.Owner.Obj); sel != nil {
			s, err := metav1.LabelSelectorAsSelector(sel)
			if err != nil {
				fail(p.Owner, "selector: %v", err)
			} else if s.Empty() || !s.Matches(labels.Set(p.Meta.Labels)) {
				fail(p.Owner, "selector %s does not match its pod template labels %v", s, p.Meta.Labels)
			}
		}
		need := func(kind, name string, optional *bool) {
			if name == "" || have[kind+"/"+name] || external(kind, name) || (optional != nil && *optional) {
				return
			}
			fail(p.Owner, "uses %s %q, which is neither rendered nor declared as provided by the operator", kind, name)
		}
		sa := p.Spec.ServiceAccountName
		if sa != "" && sa != "default" {
			need("ServiceAccount", sa, nil)
		}
		for _, v := range p.Spec.Volumes {
			switch {
			case v.ConfigMap != nil:
				need("ConfigMap", v.ConfigMap.Name, v.ConfigMap.Optional)
			case v.Secret != nil:
				need("Secret", v.Secret.SecretName, v.Secret.Optional)
			case v.PersistentVolumeClaim != nil:
				need("PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName, nil)
			case v.Projected != nil:
				for _, s := range v.Projected.Sources {
					if s.ConfigMap != nil {
						need("ConfigMap", s.ConfigMap.Name, s.ConfigMap.Optional)
					}
					if s.Secret != nil {
						need("Secret", s.Secret.Name, s.Secret.Optional)
					}
				}
			}
		}
		containers := append(append([]corev1.Container(nil), p.Spec.InitContainers...), p.Spec.Containers...)
		mounts := map[string]bool{}
		for _, v := range p.Spec.Volumes {
			mounts[v.Name] = true
		}
		if sts, ok := p.Owner.Obj.(*appsv1.StatefulSet); ok {
			for _, vct := range sts.Spec.VolumeClaimTemplates {
				mounts[vct.Name] = true
			}
		}
		used := map[string]bool{}
		for _, c := range containers {
			for _, vm := range c.VolumeMounts {
				used[vm.Name] = true
			}
			for _, vd := range c.VolumeDevices {
				used[vd.Name] = true
			}
		}
		for _, v := range p.Spec.Volumes {
			if !used[v.Name] {
				fail(p.Owner, "volume %q is mounted by no container (a patch that dropped a mount?)", v.Name)
			}
		}
		for _, c := range containers {
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					need("ConfigMap", ef.ConfigMapRef.Name, ef.ConfigMapRef.Optional)
				}
				if ef.SecretRef != nil {
					need("Secret", ef.SecretRef.Name, ef.SecretRef.Optional)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					need("ConfigMap", r.Name, r.Optional)
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					need("Secret", r.Name, r.Optional)
				}
			}
			for _, vm := range c.VolumeMounts {
				if !mounts[vm.Name] {
					fail(p.Owner, "container %s mounts volume %q, which the pod does not define", c.Name, vm.Name)
				}
			}
			for _, port := range c.Ports {
				if port.Name == "" {
					continue
				}
				for _, e := range validation.IsValidPortName(port.Name) {
					fail(p.Owner, "container %s port name %q: %s", c.Name, port.Name, e)
				}
			}
			for what, pr := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
				if pr == nil {
					continue
				}
				var port *intstr.IntOrString
				switch {
				case pr.HTTPGet != nil:
					port = &pr.HTTPGet.Port
				case pr.TCPSocket != nil:
					port = &pr.TCPSocket.Port
				}
				if port != nil && port.Type == intstr.String && !containerHasPort(c, port.StrVal) {
					fail(p.Owner, "container %s %s probe uses port %q, which the container does not name", c.Name, what, port.StrVal)
				}
			}
		}
	}

	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *corev1.Service:
			if len(v.Spec.Selector) == 0 {
				continue // endpoints managed elsewhere
			}
			sel := labels.SelectorFromSet(v.Spec.Selector)
			matched := podsMatching(pods, sel)
			if len(matched) == 0 {
				fail(o, "selector %s matches no pod template in the render", sel)
				continue
			}
			for _, sp := range v.Spec.Ports {
				if sp.TargetPort.Type == intstr.String {
					for _, p := range matched {
						if !podHasPort(p, sp.TargetPort.StrVal) {
							fail(o, "port %q targets %q, which %s does not name", sp.Name, sp.TargetPort.StrVal, p.Owner)
						}
					}
				}
			}
		case *policyv1.PodDisruptionBudget:
			s, err := metav1.LabelSelectorAsSelector(v.Spec.Selector)
			if err != nil || s.Empty() || len(podsMatching(pods, s)) == 0 {
				fail(o, "selector matches no pod template in the render")
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			ref := v.Spec.ScaleTargetRef
			if !have[ref.Kind+"/"+ref.Name] {
				fail(o, "scale target %s/%s is not in the render", ref.Kind, ref.Name)
			}
		case *monitoringv1.ServiceMonitor:
			s, err := metav1.LabelSelectorAsSelector(&v.Spec.Selector)
			if err != nil || s.Empty() {
				fail(o, "needs a non-empty selector")
				continue
			}
			var svcs []*corev1.Service
			for _, c := range objs {
				if svc, ok := c.Obj.(*corev1.Service); ok && s.Matches(labels.Set(svc.Labels)) {
					svcs = append(svcs, svc)
				}
			}
			if len(svcs) == 0 {
				fail(o, "selector %s matches no Service in the render", s)
				continue
			}
			for _, svc := range svcs {
				if v.Spec.JobLabel != "" && svc.Labels[v.Spec.JobLabel] == "" {
					fail(o, "jobLabel %q: Service %s has no such label", v.Spec.JobLabel, svc.Name)
				}
			}
			for _, ep := range v.Spec.Endpoints {
				if ep.Port == "" {
					continue
				}
				found := false
				for _, svc := range svcs {
					for _, sp := range svc.Spec.Ports {
						found = found || sp.Name == ep.Port
					}
				}
				if !found {
					fail(o, "endpoint port %q is not a port name of the selected Services", ep.Port)
				}
			}
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

func checkLabels(o Object, l map[string]string, where string) []error {
	var errs []error
	for k, v := range l {
		for _, e := range validation.IsQualifiedName(k) {
			errs = append(errs, fmt.Errorf("%s [%s]: %s key %q: %s", o, o.Source, where, k, e))
		}
		for _, e := range validation.IsValidLabelValue(v) {
			errs = append(errs, fmt.Errorf("%s [%s]: %s %s=%q: %s", o, o.Source, where, k, v, e))
		}
	}
	return errs
}

func workloadSelector(obj any) *metav1.LabelSelector {
	switch v := obj.(type) {
	case *appsv1.Deployment:
		return orEmpty(v.Spec.Selector)
	case *appsv1.StatefulSet:
		return orEmpty(v.Spec.Selector)
	case *appsv1.DaemonSet:
		return orEmpty(v.Spec.Selector)
	case *appsv1.ReplicaSet:
		return orEmpty(v.Spec.Selector)
	case *batchv1.Job:
		return v.Spec.Selector // usually generated by the API server
	}
	return nil
}

func orEmpty(s *metav1.LabelSelector) *metav1.LabelSelector {
	if s == nil {
		return &metav1.LabelSelector{}
	}
	return s
}

func podsMatching(pods []PodTemplate, sel labels.Selector) []PodTemplate {
	var out []PodTemplate
	for _, p := range pods {
		if _, isPod := p.Owner.Obj.(*corev1.Pod); isPod && p.Owner.Meta().GetAnnotations()["helm.sh/hook"] != "" {
			continue // helm test pods are not what a Service or PDB is for
		}
		if sel.Matches(labels.Set(p.Meta.Labels)) {
			out = append(out, p)
		}
	}
	return out
}

func containerHasPort(c corev1.Container, name string) bool {
	for _, p := range c.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

func podHasPort(p PodTemplate, name string) bool {
	for _, c := range p.Spec.Containers {
		if containerHasPort(c, name) {
			return true
		}
	}
	return false
}
