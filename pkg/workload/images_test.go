package workload

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/signet-dev/signet/pkg/policy"
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

func TestChangedImages(t *testing.T) {
	old := podSpec()
	cur := podSpec()
	cur.Containers[1].Image = "b:2"
	cur.EphemeralContainers = append(cur.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "d2", Image: "debug:1"}})
	cur.Volumes[1].Image.Reference = "model:8"
	got := ChangedImages(&cur, &old, "spec")
	want := []policy.ImageRef{{Path: "spec.containers[1].image", Ref: "b:2"}, {Path: "spec.ephemeralContainers[1].image", Ref: "debug:1"}, {Path: "spec.volumes[1].image.reference", Ref: "model:8"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := ChangedImages(&old, &old, "spec"); len(got) != 0 {
		t.Fatalf("unchanged spec: %v", got)
	}
}
