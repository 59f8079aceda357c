package admission

import (
	"context"
	"errors"
	"net/http"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/signet-dev/signet/pkg/policy"
)

// failures records Recorder.Failed.
type failures struct{ reasons []string }

func (f *failures) Decided(policy.Decision)   {}
func (f *failures) Failed(reason string)      { f.reasons = append(f.reasons, reason) }
func (f *failures) BrokeGlass(string, string) {}

func signed() *digestVerifier { return &digestVerifier{signed: map[string]bool{digestSigned: true}} }

// TestEnforcedTagNeedsItsPin: an image an Enforce policy admits by tag is
// denied when digest pinning is installed (the pinning webhook should have
// pinned it, and the tag could move before the kubelet pulls), and admitted
// with a warning naming the verified digest when pinning is not installed.
func TestEnforcedTagNeedsItsPin(t *testing.T) {
	pod := podWith("apps", corev1.PodSpec{Containers: containers(signedTag)})
	ctx := context.Background()

	j := testJudge(t, signed())
	j.Pinning = func(k Kind) bool { return k.Resource == "pods" }
	_, err := Validator[*corev1.Pod]{Judge: j}.ValidateCreate(ctx, pod)
	want := `image registry.test/app:v1 (spec.containers[0].image) is governed by Enforce ClusterImagePolicy "prod" and was verified at digest ` + digestSigned +
		`, but it arrives named by tag only: Signet's digest-pinning webhook did not pin it, and the tag could point to another digest when the kubelet pulls. Retry, or name the image by digest: registry.test/app:v1@` + digestSigned
	if err == nil || err.Error() != want {
		t.Fatalf("pinning installed:\n got %v\nwant %s", err, want)
	}

	j.Pinning = nil
	warnings, err := Validator[*corev1.Pod]{Judge: j}.ValidateCreate(ctx, pod)
	wantWarning := `image registry.test/app:v1 (spec.containers[0].image) was verified at digest ` + digestSigned +
		` by Enforce ClusterImagePolicy "prod", but digest pinning is off and the tag can move: the kubelet may later pull a digest nobody verified. Name the image by digest (registry.test/app:v1@` + digestSigned + `) or install Signet's digest pinning`
	if err != nil || len(warnings) != 1 || warnings[0] != wantWarning {
		t.Fatalf("pinning not installed: err %v, warnings %q, want [%q]", err, warnings, wantWarning)
	}

	// Pinned, Warn-only and ungoverned images are none of this's business.
	j.Pinning = func(Kind) bool { return true }
	for _, img := range []string{signedTag + "@" + digestSigned, "registry.test/warn:v1", "registry.test/free:v1"} {
		if warnings, err := (Validator[*corev1.Pod]{Judge: j}).ValidateCreate(ctx, podWith("apps", corev1.PodSpec{Containers: containers(img)})); err != nil || len(warnings) != 0 {
			t.Errorf("%s: err %v, warnings %q; want admitted silently", img, err, warnings)
		}
	}
}

// TestImageVolumesAreJudged: an unsigned image volume denies a Pod whose
// containers are signed.
func TestImageVolumesAreJudged(t *testing.T) {
	pod := podWith("apps", corev1.PodSpec{
		Containers: containers(signedTag + "@" + digestSigned),
		Volumes:    []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: unsignedTag}}}},
	})
	_, err := Validator[*corev1.Pod]{Judge: testJudge(t, signed())}.ValidateCreate(context.Background(), pod)
	want := `image registry.test/app:unsigned@` + digestUnsigned + ` (spec.volumes[0].image.reference) denied by ClusterImagePolicy "prod": no valid signature from authority "ci" (test key): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

// TestSignetFailuresAreUnavailable: when Signet cannot judge (policies not
// compiled, namespace unreadable) the answer is a 503 saying so, counted as
// an error, never a 403 that reads like the image's fault.
func TestSignetFailuresAreUnavailable(t *testing.T) {
	pod := podWith("apps", corev1.PodSpec{Containers: containers(signedTag + "@" + digestSigned)})
	for _, tt := range []struct {
		name, reason, want string
		set                func(*Judge)
	}{{
		name: "policies not compiled", reason: FailedNotReady,
		want: `Signet is not ready to judge images: ClusterImagePolicy "prod" is not compiled yet. This is Signet's failure, not the image's: retry; if it persists, check Signet's logs (kubectl -n <signet namespace> logs deploy/signet)`,
		set: func(j *Judge) {
			j.Ready = func(context.Context) error { return errors.New(`ClusterImagePolicy "prod" is not compiled yet`) }
		},
	}, {
		name: "namespace unreadable", reason: FailedNamespace,
		want: `Signet could not read namespace "apps" to apply ClusterImagePolicy namespace selectors: dial tcp 10.96.0.1:443: connect: connection refused. This is Signet's failure, not the image's: retry; if it persists, check Signet's logs (kubectl -n <signet namespace> logs deploy/signet)`,
		set: func(j *Judge) {
			j.Namespaces = fake.NewClientBuilder().WithScheme(testScheme(t)).WithInterceptorFuncs(interceptor.Funcs{
				Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
					return errors.New("dial tcp 10.96.0.1:443: connect: connection refused")
				},
			}).Build()
		},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			j := testJudge(t, signed())
			rec := &failures{}
			j.Recorder = rec
			tt.set(j)
			_, err := Validator[*corev1.Pod]{Judge: j}.ValidateCreate(context.Background(), pod)
			var status apierrors.APIStatus
			if !errors.As(err, &status) || status.Status().Code != http.StatusServiceUnavailable || status.Status().Message != tt.want {
				t.Fatalf("got %#v\nwant a 503 with %q", err, tt.want)
			}
			if len(rec.reasons) != 1 || rec.reasons[0] != tt.reason {
				t.Fatalf("failures recorded %v, want [%s]", rec.reasons, tt.reason)
			}
		})
	}
}

// TestPinningInstalled reads what is installed: no configuration, a
// configuration without the kind's webhook, and one calling its pin path
// by URL or by Service.
func TestPinningInstalled(t *testing.T) {
	pods, deployments := MustKind("pods"), MustKind("deployments")
	build := func(objs ...client.Object) client.Reader {
		return fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).Build()
	}
	url := "https://127.0.0.1:9443" + pods.PinPath()
	svcPath := deployments.PinPath()
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "signet-mutating"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			{Name: "pods.pin.signet.dev", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url}},
			{Name: "deployments.pin.signet.dev", ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service: &admissionregistrationv1.ServiceReference{Name: "s", Namespace: "n", Path: &svcPath}}},
		},
	}
	if PinningInstalled(build(), "signet-mutating")(pods) {
		t.Error("no configuration: pinning reported installed")
	}
	installed := PinningInstalled(build(mwc), "signet-mutating")
	if !installed(pods) || !installed(deployments) || installed(MustKind("jobs")) {
		t.Errorf("pods %v deployments %v jobs %v; want true true false", installed(pods), installed(deployments), installed(MustKind("jobs")))
	}
	if PinningInstalled(build(mwc), "other")(pods) {
		t.Error("another configuration's name: pinning reported installed")
	}
}
