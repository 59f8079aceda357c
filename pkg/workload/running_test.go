package workload

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/signet-dev/signet/pkg/policy"
)

func TestRunningJudgesTheDigestThatRuns(t *testing.T) {
	d := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	pod := &corev1.Pod{Spec: podSpec()}
	pod.Spec.Containers[1].Image = "b:1@" + d("0") // pinned at admission; another digest runs
	pod.Status = corev1.PodStatus{
		InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", ImageID: "registry.example/init@" + d("1")}},
		ContainerStatuses: []corev1.ContainerStatus{
			// Status lists containers by name, not in spec order.
			{Name: "b", ImageID: "docker-pullable://b@" + d("2")},
			// A config digest names no manifest: the spec is judged.
			{Name: "a", ImageID: d("3"), VolumeMounts: []corev1.VolumeMountStatus{
				{Name: "model", VolumeStatus: &corev1.VolumeStatus{Image: &corev1.ImageVolumeStatus{ImageRef: "model@" + d("4")}}},
			}},
		},
		// The ephemeral container has not started: no status yet.
	}
	want := []RunningImage{
		{ImageRef: policy.ImageRef{Path: "spec.initContainers[0].image", Ref: "init:1@" + d("1")}, Spec: "init:1", FromStatus: true},
		{ImageRef: policy.ImageRef{Path: "spec.containers[0].image", Ref: "a:1"}, Spec: "a:1"},
		{ImageRef: policy.ImageRef{Path: "spec.containers[1].image", Ref: "b:1@" + d("2")}, Spec: "b:1@" + d("0"), FromStatus: true},
		{ImageRef: policy.ImageRef{Path: "spec.ephemeralContainers[0].image", Ref: "busybox"}, Spec: "busybox"},
		{ImageRef: policy.ImageRef{Path: "spec.volumes[1].image.reference", Ref: "model:7@" + d("4")}, Spec: "model:7", FromStatus: true},
	}
	if got := Running(pod); !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestDigestOf(t *testing.T) {
	digest := "sha256:" + strings.Repeat("a", 64)
	for id, want := range map[string]string{
		"registry.example/app@" + digest:                   digest,
		"docker-pullable://registry.example/app@" + digest: digest,
		digest:                                 "",
		"registry.example/app@sha256:short":    "",
		"registry.example/app@" + digest + "x": "",
		"":                                     "",
	} {
		got, ok := DigestOf(id)
		if got != want || ok != (want != "") {
			t.Errorf("DigestOf(%q) = %q, %v; want %q", id, got, ok, want)
		}
	}
}
