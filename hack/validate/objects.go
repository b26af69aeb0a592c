package validate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	certmanagerv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// Object is one rendered Kubernetes object, decoded into its typed Go struct.
type Object struct {
	Source string // where it came from, for messages: "chart[ci/postgres.yaml]: templates/x.yaml"
	GVK    schema.GroupVersionKind
	Obj    runtime.Object
	Raw    []byte // the YAML document as rendered
}

// Meta returns the object's metadata.
func (o Object) Meta() metav1.Object {
	m, _ := o.Obj.(metav1.Object)
	return m
}

// String names the object for messages: "Deployment gatehouse/gatehouse-user".
func (o Object) String() string {
	m := o.Meta()
	if m == nil {
		return o.GVK.Kind
	}
	if m.GetNamespace() == "" {
		return o.GVK.Kind + " " + m.GetName()
	}
	return o.GVK.Kind + " " + m.GetNamespace() + "/" + m.GetName()
}

var (
	scheme = runtime.NewScheme()
	// strictYAML is apimachinery's strict serializer: unknown fields,
	// duplicate fields and case-mismatched fields are errors, as are wrong
	// types and kinds the scheme does not know.
	strictYAML = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
		kjson.SerializerOptions{Yaml: true, Strict: true})
)

func init() {
	// Every built-in group (core, apps, policy, autoscaling, networking,
	// batch, rbac, ...) plus the prometheus-operator's monitoring.coreos.com/v1
	// and cert-manager's cert-manager.io/v1 (Certificate, Issuer).
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(monitoringv1.AddToScheme(scheme))
	utilruntime.Must(certmanagerv1.AddToScheme(scheme))
}

// DecodeStrict decodes one YAML document into its typed object. It fails on
// unknown or duplicate fields, on values of the wrong type, on a missing
// apiVersion/kind and on kinds that neither Kubernetes nor the
// prometheus-operator define.
func DecodeStrict(source string, doc []byte) (Object, error) {
	obj, gvk, err := strictYAML.Decode(doc, nil, nil)
	if err != nil {
		return Object{}, fmt.Errorf("%s: %w", source, err)
	}
	if _, ok := obj.(*runtime.Unknown); ok {
		return Object{}, fmt.Errorf("%s: %s is not a typed kind", source, gvk)
	}
	o := Object{Source: source, GVK: *gvk, Obj: obj, Raw: doc}
	if o.Meta() == nil {
		return Object{}, fmt.Errorf("%s: %s has no object metadata", source, gvk)
	}
	if o.Meta().GetName() == "" {
		return Object{}, fmt.Errorf("%s: %s has no metadata.name", source, gvk)
	}
	return o, nil
}

// SplitDocuments splits a multi-document YAML stream, dropping documents that
// hold nothing but comments and whitespace (as helm and kubectl do).
func SplitDocuments(stream []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var v any
		if err := yaml.Unmarshal(doc, &v); err != nil {
			return nil, err
		}
		if v == nil {
			continue
		}
		docs = append(docs, doc)
	}
}

// DecodeStream strictly decodes every document of a YAML stream.
func DecodeStream(source string, stream []byte) ([]Object, error) {
	docs, err := SplitDocuments(stream)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	var objs []Object
	var errs []error
	for i, doc := range docs {
		o, err := DecodeStrict(fmt.Sprintf("%s (document %d)", source, i+1), doc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		objs = append(objs, o)
	}
	return objs, errors.Join(errs...)
}

// Find returns the objects of a kind, optionally with a name.
func Find(objs []Object, kind, name string) []Object {
	var out []Object
	for _, o := range objs {
		if o.GVK.Kind == kind && (name == "" || o.Meta().GetName() == name) {
			out = append(out, o)
		}
	}
	return out
}

// Kinds lists "Kind/name" for every object, for messages.
func Kinds(objs []Object) string {
	var b strings.Builder
	for i, o := range objs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(o.GVK.Kind + "/" + o.Meta().GetName())
	}
	return b.String()
}
