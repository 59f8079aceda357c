// Package admission turns Kubernetes admission requests for Pods and the
// workloads that create them into policy decisions, and decisions into
// admission responses. It talks to no registry or AWS itself: the policy
// engine and its verifiers do.
package admission

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/signet-dev/signet/pkg/policy"
)

// PodSpecOf returns the Pod spec an object runs and the field path to it:
// spec for a Pod, spec.template.spec for Deployments, ReplicaSets,
// StatefulSets, DaemonSets, Jobs and ReplicationControllers, and
// spec.jobTemplate.spec.template.spec for CronJobs. ok is false for any
// other object.
func PodSpecOf(obj runtime.Object) (spec *corev1.PodSpec, path string, ok bool) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return &o.Spec, "spec", true
	case *appsv1.Deployment:
		return &o.Spec.Template.Spec, "spec.template.spec", true
	case *appsv1.ReplicaSet:
		return &o.Spec.Template.Spec, "spec.template.spec", true
	case *appsv1.StatefulSet:
		return &o.Spec.Template.Spec, "spec.template.spec", true
	case *appsv1.DaemonSet:
		return &o.Spec.Template.Spec, "spec.template.spec", true
	case *batchv1.Job:
		return &o.Spec.Template.Spec, "spec.template.spec", true
	case *batchv1.CronJob:
		return &o.Spec.JobTemplate.Spec.Template.Spec, "spec.jobTemplate.spec.template.spec", true
	case *corev1.ReplicationController:
		if o.Spec.Template == nil {
			return &corev1.PodSpec{}, "spec.template.spec", true
		}
		return &o.Spec.Template.Spec, "spec.template.spec", true
	}
	return nil, "", false
}

// Images lists every image of a Pod spec with its field path, in the order
// the kubelet starts them: initContainers, containers, ephemeralContainers.
func Images(spec *corev1.PodSpec, path string) []policy.ImageRef {
	var out []policy.ImageRef
	for i, c := range spec.InitContainers {
		out = append(out, policy.ImageRef{Path: fmt.Sprintf("%s.initContainers[%d].image", path, i), Ref: c.Image})
	}
	for i, c := range spec.Containers {
		out = append(out, policy.ImageRef{Path: fmt.Sprintf("%s.containers[%d].image", path, i), Ref: c.Image})
	}
	for i, c := range spec.EphemeralContainers {
		out = append(out, policy.ImageRef{Path: fmt.Sprintf("%s.ephemeralContainers[%d].image", path, i), Ref: c.Image})
	}
	return out
}

// ChangedImages returns the images of spec that old does not run at the
// same path: on UPDATE only new or changed images need judging (an
// unchanged image was judged when it was set).
func ChangedImages(spec, old *corev1.PodSpec, path string) []policy.ImageRef {
	before := map[string]string{}
	for _, r := range Images(old, path) {
		before[r.Path] = r.Ref
	}
	var out []policy.ImageRef
	for _, r := range Images(spec, path) {
		if before[r.Path] != r.Ref {
			out = append(out, r)
		}
	}
	return out
}
