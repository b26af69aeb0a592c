package validate

import (
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// PodTemplate is a pod, or the template of the pods a workload creates.
type PodTemplate struct {
	Owner Object
	Meta  *metav1.ObjectMeta
	Spec  *corev1.PodSpec
}

// PodTemplates extracts the pod specs of every workload kind that has one.
func PodTemplates(objs []Object) []PodTemplate {
	var out []PodTemplate
	for _, o := range objs {
		var meta *metav1.ObjectMeta
		var spec *corev1.PodSpec
		switch v := o.Obj.(type) {
		case *corev1.Pod:
			meta, spec = &v.ObjectMeta, &v.Spec
		case *corev1.PodTemplate:
			meta, spec = &v.Template.ObjectMeta, &v.Template.Spec
		case *corev1.ReplicationController:
			if v.Spec.Template != nil {
				meta, spec = &v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec
			}
		case *appsv1.Deployment:
			meta, spec = &v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec
		case *appsv1.StatefulSet:
			meta, spec = &v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec
		case *appsv1.DaemonSet:
			meta, spec = &v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec
		case *appsv1.ReplicaSet:
			meta, spec = &v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec
		case *batchv1.Job:
			meta, spec = &v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec
		case *batchv1.CronJob:
			meta, spec = &v.Spec.JobTemplate.Spec.Template.ObjectMeta, &v.Spec.JobTemplate.Spec.Template.Spec
		default:
			continue
		}
		if spec != nil {
			out = append(out, PodTemplate{Owner: o, Meta: meta, Spec: spec})
		}
	}
	return out
}

var restrictedEvaluator = func() policy.Evaluator {
	e, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		panic(err)
	}
	return e
}()

// CheckRestricted evaluates a pod against the Pod Security Standards'
// "restricted" level at the latest version, with the same checks the
// PodSecurity admission controller runs.
func CheckRestricted(p PodTemplate) error {
	lv := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	agg := policy.AggregateCheckResults(restrictedEvaluator.EvaluatePod(lv, p.Meta, p.Spec))
	if agg.Allowed {
		return nil
	}
	var reasons []string
	for i, r := range agg.ForbiddenReasons {
		reasons = append(reasons, r+" ("+agg.ForbiddenDetails[i]+")")
	}
	return fmt.Errorf("%s [%s] violates PodSecurity %q: %s", p.Owner, p.Owner.Source, lv, strings.Join(reasons, "; "))
}

// CheckAllRestricted checks every pod template among objs.
func CheckAllRestricted(objs []Object) error {
	var errs []error
	for _, p := range PodTemplates(objs) {
		errs = append(errs, CheckRestricted(p))
	}
	return errors.Join(errs...)
}
