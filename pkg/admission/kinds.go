package admission

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Kinds are the Pod-bearing resources Signet judges and pins: the one table
// that drives image extraction (PodSpecOf), the handlers registered on the
// webhook server, the generated webhook configurations
// (config/webhook/manifests.yaml, which the chart is tested against) and the
// e2e harness. Adding a kind is one row.
var Kinds = []Kind{
	kind(corev1.SchemeGroupVersion, "pods", ownSpec,
		func(o *corev1.Pod) *corev1.PodSpec { return &o.Spec }, "pods/ephemeralcontainers"),
	kind(appsv1.SchemeGroupVersion, "deployments", templateSpec,
		func(o *appsv1.Deployment) *corev1.PodSpec { return &o.Spec.Template.Spec }),
	kind(appsv1.SchemeGroupVersion, "replicasets", templateSpec,
		func(o *appsv1.ReplicaSet) *corev1.PodSpec { return &o.Spec.Template.Spec }),
	kind(appsv1.SchemeGroupVersion, "statefulsets", templateSpec,
		func(o *appsv1.StatefulSet) *corev1.PodSpec { return &o.Spec.Template.Spec }),
	kind(appsv1.SchemeGroupVersion, "daemonsets", templateSpec,
		func(o *appsv1.DaemonSet) *corev1.PodSpec { return &o.Spec.Template.Spec }),
	kind(batchv1.SchemeGroupVersion, "jobs", templateSpec,
		func(o *batchv1.Job) *corev1.PodSpec { return &o.Spec.Template.Spec }),
	kind(batchv1.SchemeGroupVersion, "cronjobs", append([]string{"spec", "jobTemplate"}, templateSpec...),
		func(o *batchv1.CronJob) *corev1.PodSpec { return &o.Spec.JobTemplate.Spec.Template.Spec }),
	kind(corev1.SchemeGroupVersion, "replicationcontrollers", templateSpec,
		func(o *corev1.ReplicationController) *corev1.PodSpec {
			if o.Spec.Template == nil { // optional in the API: nothing to run
				return &corev1.PodSpec{}
			}
			return &o.Spec.Template.Spec
		}),
}

// Where the Pod spec is: a Pod's own spec, and the template workloads
// stamp Pods out of.
var (
	ownSpec      = []string{"spec"}
	templateSpec = append([]string{"spec", "template"}, ownSpec...)
)

// Kind is one Pod-bearing resource.
type Kind struct {
	schema.GroupVersionResource
	// Subresources are judged like the resource (kubectl debug adds
	// ephemeral containers through pods/ephemeralcontainers).
	Subresources []string
	// SpecPath is the field path from the object to its Pod spec.
	SpecPath []string

	podSpec      func(runtime.Object) (*corev1.PodSpec, bool)
	newValidator func(*runtime.Scheme, *Judge) *ctrladmission.Webhook
}

// kind builds a row of Kinds for the Go type T.
func kind[T client.Object](gv schema.GroupVersion, resource string, path []string, spec func(T) *corev1.PodSpec, subresources ...string) Kind {
	return Kind{
		GroupVersionResource: gv.WithResource(resource),
		Subresources:         subresources,
		SpecPath:             path,
		podSpec: func(obj runtime.Object) (*corev1.PodSpec, bool) {
			o, ok := obj.(T)
			if !ok {
				return nil, false
			}
			return spec(o), true
		},
		newValidator: func(scheme *runtime.Scheme, j *Judge) *ctrladmission.Webhook {
			return ctrladmission.WithValidator[T](scheme, Validator[T]{Judge: j})
		},
	}
}

// ValidatePath is where the kind's validating webhook is served.
func (k Kind) ValidatePath() string { return "/validate/" + k.Resource }

// PinPath is where the kind's digest-pinning (mutating) webhook is served.
func (k Kind) PinPath() string { return "/pin/" + k.Resource }

// FieldPath is SpecPath as messages and patches write it: "spec.template.spec".
func (k Kind) FieldPath() string { return strings.Join(k.SpecPath, ".") }

// KindOf returns the row for a resource name ("pods", "deployments", …).
func KindOf(resource string) (Kind, error) {
	for _, k := range Kinds {
		if k.Resource == resource {
			return k, nil
		}
	}
	return Kind{}, fmt.Errorf("%s is not a Pod-bearing kind Signet judges", resource)
}

// MustKind is KindOf for resources known to be in Kinds (tests, tools).
func MustKind(resource string) Kind {
	k, err := KindOf(resource)
	if err != nil {
		panic(err)
	}
	return k
}

// PodSpecOf returns the Pod spec an object runs and the field path to it.
// ok is false for any object that is not of a kind in Kinds.
func PodSpecOf(obj runtime.Object) (spec *corev1.PodSpec, path string, ok bool) {
	for _, k := range Kinds {
		if spec, ok := k.podSpec(obj); ok {
			return spec, k.FieldPath(), true
		}
	}
	return nil, "", false
}

// Register serves the validating webhook of every kind in Kinds on srv.
func Register(srv webhook.Server, scheme *runtime.Scheme, j *Judge) {
	for _, k := range Kinds {
		srv.Register(k.ValidatePath(), k.newValidator(scheme, j))
	}
}

// RegisterPinning serves the digest-pinning webhook of every kind in Kinds
// on srv. A nil j turns pinning off (--digest-pinning=false): the paths
// still answer, admitting without a patch, so a MutatingWebhookConfiguration
// left in place never stops Pods.
func RegisterPinning(srv webhook.Server, scheme *runtime.Scheme, j *Judge) {
	for _, k := range Kinds {
		srv.Register(k.PinPath(), &ctrladmission.Webhook{Handler: NewPinner(scheme, j)})
	}
}
