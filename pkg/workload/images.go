// Package workload says which images a Pod spec makes the kubelet pull, and
// which digests a running Pod actually runs. Admission (pkg/admission) and
// continuous validation (pkg/audit) both judge what it lists, so the two
// never disagree about what a Pod pulls.
package workload

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/signet-dev/signet/pkg/policy"
)

// Images lists everything a Pod spec makes the kubelet pull, with its field
// path: initContainers, containers and ephemeralContainers in the order the
// kubelet starts them, then image volumes (spec.volumes[].image.reference),
// which are pulled like container images and so are judged like them.
func Images(spec *corev1.PodSpec, path string) []policy.ImageRef {
	out := make([]policy.ImageRef, 0, len(spec.InitContainers)+len(spec.Containers)+len(spec.EphemeralContainers))
	for i, c := range spec.InitContainers {
		out = append(out, policy.ImageRef{Path: fmt.Sprintf("%s.initContainers[%d].image", path, i), Ref: c.Image})
	}
	for i, c := range spec.Containers {
		out = append(out, policy.ImageRef{Path: fmt.Sprintf("%s.containers[%d].image", path, i), Ref: c.Image})
	}
	for i, c := range spec.EphemeralContainers {
		out = append(out, policy.ImageRef{Path: fmt.Sprintf("%s.ephemeralContainers[%d].image", path, i), Ref: c.Image})
	}
	for i, v := range spec.Volumes {
		if v.Image != nil {
			out = append(out, policy.ImageRef{Path: fmt.Sprintf("%s.volumes[%d].image.reference", path, i), Ref: v.Image.Reference})
		}
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
