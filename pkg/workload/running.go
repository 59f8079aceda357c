package workload

import (
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/signet-dev/signet/pkg/policy"
)

// RunningImage is an image a Pod pulls, as continuous validation judges it.
type RunningImage struct {
	// Path and Ref: the field path in the spec, and the reference to judge:
	// the spec's reference at the digest the kubelet reports running, or the
	// spec's reference itself while the status names no digest yet.
	policy.ImageRef
	// Spec is the reference as the Pod spec writes it.
	Spec string
	// FromStatus: Ref's digest is the one the kubelet reports running.
	FromStatus bool
}

// Running lists every image of a Pod (see Images) at the digest it actually
// runs: status.initContainerStatuses, containerStatuses and
// ephemeralContainerStatuses[].imageID for containers, and the image volume
// status (volumeMounts[].volumeStatus.image.imageRef) for image volumes. A
// tag that moved after admission, or a registry that served another digest,
// is judged at what runs, not at what the spec names.
func Running(pod *corev1.Pod) []RunningImage {
	running := map[string]string{} // spec path -> digest reported running
	byName := func(prefix string, statuses []corev1.ContainerStatus, names []string) {
		for _, st := range statuses {
			for i, n := range names {
				if n == st.Name {
					if d, ok := DigestOf(st.ImageID); ok {
						running[fmt.Sprintf("spec.%s[%d].image", prefix, i)] = d
					}
				}
			}
		}
	}
	byName("initContainers", pod.Status.InitContainerStatuses, containerNames(pod.Spec.InitContainers))
	byName("containers", pod.Status.ContainerStatuses, containerNames(pod.Spec.Containers))
	ephemeral := make([]string, len(pod.Spec.EphemeralContainers))
	for i, c := range pod.Spec.EphemeralContainers {
		ephemeral[i] = c.Name
	}
	byName("ephemeralContainers", pod.Status.EphemeralContainerStatuses, ephemeral)
	volumes := map[string]string{} // volume name -> digest
	for _, statuses := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for _, st := range statuses {
			for _, m := range st.VolumeMounts {
				if m.VolumeStatus != nil && m.VolumeStatus.Image != nil {
					if d, ok := DigestOf(m.VolumeStatus.Image.ImageRef); ok {
						volumes[m.Name] = d
					}
				}
			}
		}
	}
	for i, v := range pod.Spec.Volumes {
		if d, ok := volumes[v.Name]; ok && v.Image != nil {
			running[fmt.Sprintf("spec.volumes[%d].image.reference", i)] = d
		}
	}

	images := Images(&pod.Spec, "spec")
	out := make([]RunningImage, len(images))
	for i, img := range images {
		out[i] = RunningImage{ImageRef: img, Spec: img.Ref}
		if d, ok := running[img.Path]; ok {
			out[i].Ref, out[i].FromStatus = AtDigest(img.Ref, d), true
		}
	}
	return out
}

func containerNames(cs []corev1.Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

var digestRE = regexp.MustCompile(`@(sha256:[0-9a-f]{64})$`)

// DigestOf returns the manifest digest a runtime's image ID names:
// containerd reports repository@sha256:…, Docker docker-pullable://repository@sha256:….
// An ID that is only the image's config digest (sha256:… with no
// repository) names no manifest, so it is not a digest to judge.
func DigestOf(imageID string) (string, bool) {
	m := digestRE.FindStringSubmatch(imageID)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// AtDigest is ref (as the user wrote it, tag kept) at digest.
func AtDigest(ref, digest string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	return ref + "@" + digest
}
