package admission

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/workload"
)

func podSpec() corev1.PodSpec {
	return corev1.PodSpec{
		InitContainers:      []corev1.Container{{Name: "init", Image: "init:1"}},
		Containers:          []corev1.Container{{Name: "a", Image: "a:1"}, {Name: "b", Image: "b:1"}},
		EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}},
		Volumes: []corev1.Volume{
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "model", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "model:7"}}},
		},
	}
}

func TestImagesOfEveryKind(t *testing.T) {
	tmpl := corev1.PodTemplateSpec{Spec: podSpec()}
	want := func(p string) []policy.ImageRef {
		return []policy.ImageRef{
			{Path: p + ".initContainers[0].image", Ref: "init:1"},
			{Path: p + ".containers[0].image", Ref: "a:1"},
			{Path: p + ".containers[1].image", Ref: "b:1"},
			{Path: p + ".ephemeralContainers[0].image", Ref: "busybox"},
			{Path: p + ".volumes[1].image.reference", Ref: "model:7"},
		}
	}
	for _, tt := range []struct {
		obj  runtime.Object
		path string
	}{
		{&corev1.Pod{Spec: podSpec()}, "spec"},
		{&appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: tmpl}}, "spec.template.spec"},
		{&appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Template: tmpl}}, "spec.template.spec"},
		{&appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Template: tmpl}}, "spec.template.spec"},
		{&appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: tmpl}}, "spec.template.spec"},
		{&batchv1.Job{Spec: batchv1.JobSpec{Template: tmpl}}, "spec.template.spec"},
		{&batchv1.CronJob{Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}}, "spec.jobTemplate.spec.template.spec"},
		{&corev1.ReplicationController{Spec: corev1.ReplicationControllerSpec{Template: &tmpl}}, "spec.template.spec"},
	} {
		spec, path, ok := PodSpecOf(tt.obj)
		if !ok || path != tt.path {
			t.Fatalf("%T: path %q ok %v", tt.obj, path, ok)
		}
		if got := workload.Images(spec, path); !reflect.DeepEqual(got, want(tt.path)) {
			t.Errorf("%T:\n got %v\nwant %v", tt.obj, got, want(tt.path))
		}
	}
	if _, _, ok := PodSpecOf(&corev1.ConfigMap{}); ok {
		t.Error("ConfigMap has no pod spec")
	}
	if spec, _, ok := PodSpecOf(&corev1.ReplicationController{}); !ok || len(workload.Images(spec, "spec.template.spec")) != 0 {
		t.Error("a ReplicationController without template has no images")
	}
}
