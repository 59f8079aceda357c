package admission

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/signet-dev/signet/pkg/policy"
)

// TestTooManyImagesAreRefusedAtOnce: a Pod naming more distinct images
// than --max-images-per-request is refused with one line naming the limit
// and the flag, and nothing is resolved or verified.
func TestTooManyImagesAreRefusedAtOnce(t *testing.T) {
	v := signed()
	j := testJudge(t, v)
	j.Engine.MaxImages = 3
	var images []string
	for i := range 4 {
		images = append(images, fmt.Sprintf("registry.test/app@sha256:%064d", i))
	}
	// A repeated image counts once.
	images = append(images, images[0])

	_, err := Validator[*corev1.Pod]{Judge: j}.ValidateCreate(context.Background(), podWith("apps", corev1.PodSpec{Containers: containers(images...)}))
	want := "the object names 4 distinct images, more than the 3 Signet judges in one request (--max-images-per-request): split the workload, or ask your cluster admin to raise the limit"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if n := v.calls.Load(); n != 0 {
		t.Fatalf("%d verifications for a refused request, want 0", n)
	}

	// At the limit, the images are judged.
	_, err = Validator[*corev1.Pod]{Judge: j}.ValidateCreate(context.Background(), podWith("apps", corev1.PodSpec{Containers: containers(images[:3]...)}))
	if err == nil || apierrors.IsServiceUnavailable(err) || v.calls.Load() != 3 {
		t.Fatalf("3 images: err %v after %d verifications, want a denial of the unsigned digests after 3", err, v.calls.Load())
	}
}

// heldVerifier blocks every verification until release is closed.
type heldVerifier struct{ release chan struct{} }

func (v *heldVerifier) Verify(_ context.Context, img policy.Image) policy.Result {
	<-v.release
	return policy.Result{Image: img.Ref.String(), Authority: v.Describe(), Reason: policy.ReasonVerified}
}
func (v *heldVerifier) Identity() string { return "test;held" }
func (v *heldVerifier) Describe() string { return "held key" }

// TestBusyIsSignetsFailure: when every verification slot of the process
// stays taken until the admission's deadline, the answer is a 503 saying
// Signet is busy, not a denial of the image.
func TestBusyIsSignetsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := testJudge(t, signed())
		j.Engine.Cache = policy.NewVerdictCache(policy.CacheOptions{MaxConcurrent: 1})
		held := &heldVerifier{release: make(chan struct{})}
		img := policy.Image{}
		ref, err := policy.ParseImage("registry.test/other@"+digestUnsigned, j.Engine.ParseOptions...)
		if err != nil {
			t.Fatal(err)
		}
		img.Ref = ref.Context().Digest(digestUnsigned)
		go j.Engine.Cache.Verify(context.Background(), held, img) // takes the one slot
		synctest.Wait()

		_, err = Validator[*corev1.Pod]{Judge: j}.ValidateCreate(context.Background(), podWith("apps", corev1.PodSpec{Containers: containers("registry.test/app@" + digestSigned)}))
		want := "Signet is busy: all 1 verification slots (--max-concurrent-verifications) stayed taken until the admission's deadline. This is Signet's failure, not the image's: retry; if it persists, check Signet's logs (kubectl -n <signet namespace> logs deploy/signet)"
		if !apierrors.IsServiceUnavailable(err) || err.Error() != want {
			t.Fatalf("got %v\nwant 503 %s", err, want)
		}
		close(held.release)
		synctest.Wait()

		// With the slot free, the same Pod is judged.
		if _, err := (Validator[*corev1.Pod]{Judge: j}).ValidateCreate(context.Background(), podWith("apps", corev1.PodSpec{Containers: containers("registry.test/app@" + digestSigned)})); err != nil {
			t.Fatalf("after the slot was released: %v", err)
		}
	})
}
