package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/signet-dev/signet/pkg/admission"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/test/fixtures"
)

// The regressions of the security review (issue 13), each through the real
// API server with the generated webhook configurations.

// TestWarnFailureDoesNotPreventThePin: an image that satisfies its Enforce
// policy is pinned even when a Warn-mode policy on it fails; before, the
// verdict was "warned", nothing was pinned and the tag was admitted.
func TestWarnFailureDoesNotPreventThePin(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	otherAlias := h.alias + "-warn"
	if err := fixtures.CreateKMSAlias(ctx, otherAlias); err != nil {
		t.Fatal(err)
	}
	img, digest := h.push(t, "warnpin:v1")
	h.sign(t, img, digest)
	glob := h.repo + "/warnpin"
	h.policy(t, labelled(h.kmsPolicy("e2e-warnpin-enforce", glob, h.alias, v1alpha1.ModeEnforce)), metav1.ConditionTrue)
	h.policy(t, labelled(h.kmsPolicy("e2e-warnpin-warn", glob, otherAlias, v1alpha1.ModeWarn)), metav1.ConditionTrue)
	ns := h.namespace(t, "", nil)

	cs, warnings := h.warningClient(t)
	p, err := cs.CoreV1().Pods(ns).Create(ctx, pod("warned", img), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pinned := img + "@" + digest
	if got := p.Spec.Containers[0].Image; got != pinned {
		t.Fatalf("image %q, want %q", got, pinned)
	}
	want := fmt.Sprintf(`image %s (spec.containers[0].image) would be denied by ClusterImagePolicy "e2e-warnpin-warn" (Warn mode): no valid signature from authority "ci-kms" (awskms:///%s): signature in the sha256-%s.sig tag does not verify with the key. Sign this digest in your pipeline with one of the policy's authorities.`, pinned, otherAlias, strings.TrimPrefix(digest, "sha256:"))
	if len(*warnings) != 1 || (*warnings)[0] != want {
		t.Fatalf("warnings %q\nwant [%q]", *warnings, want)
	}
}

// TestUnpinnedEnforcedTag: with the digest-pinning configuration installed
// but its webhook not pinning (unreachable, failurePolicy Ignore), an
// enforced tag is denied and never admitted as a tag; once the mutating
// configuration is removed, the same tag is admitted with a warning that it
// can move.
func TestUnpinnedEnforcedTag(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	img, digest := h.push(t, "unpinned:v1")
	h.sign(t, img, digest)
	h.policy(t, labelled(h.kmsPolicy("e2e-unpinned", h.repo+"/unpinned", h.alias, v1alpha1.ModeEnforce)), metav1.ConditionTrue)

	label := fmt.Sprintf("signet-e2e-unpinned-%d", os.Getpid())
	mwcName := label + "-mutating"
	// A digest-pinning configuration whose webhook cannot be reached: the API
	// server ignores the failure and calls the validating webhook with the tag.
	ignore := admissionregistrationv1.Ignore
	none := admissionregistrationv1.SideEffectClassNone
	unreachable := "https://127.0.0.1:1" + admission.MustKind("pods").PinPath()
	one := int32(1)
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: mwcName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "pods.pin.signet.dev",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &unreachable},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			FailurePolicy: &ignore, SideEffects: &none, TimeoutSeconds: &one,
			AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{label: "true"}},
		}},
	}
	mwcs := h.cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := mwcs.Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mwcs.Delete(context.Background(), mwcName, metav1.DeleteOptions{}) })
	h.instance(t, label, 10, "--no-match-policy=allow", "--mutating-webhook-configuration="+mwcName)
	ns := h.plainNamespace(t, map[string]string{label: "true"})

	cs, warnings := h.warningClient(t)
	_, err := cs.CoreV1().Pods(ns).Create(ctx, pod("tag", img), metav1.CreateOptions{})
	want := h.denial(t, "pods", fmt.Sprintf(`image %s (spec.containers[0].image) is governed by Enforce ClusterImagePolicy "e2e-unpinned" and was verified at digest %s, but it arrives named by tag only: Signet's digest-pinning webhook did not pin it, and the tag could point to another digest when the kubelet pulls. Retry, or name the image by digest: %s@%s`, img, digest, img, digest))
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("got:  %v\nwant: %s", err, want)
	}

	// Pinning is what is installed: without the mutating configuration the
	// tag is admitted with a warning, never denied for want of a pin.
	if err := mwcs.Delete(ctx, mwcName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wantWarning := fmt.Sprintf(`image %s (spec.containers[0].image) was verified at digest %s by Enforce ClusterImagePolicy "e2e-unpinned", but digest pinning is off and the tag can move: the kubelet may later pull a digest nobody verified. Name the image by digest (%s@%s) or install Signet's digest pinning`, img, digest, img, digest)
	var created *corev1.Pod
	// The webhook learns of the deletion through its watch.
	waitFor(t, func() bool {
		*warnings = nil
		created, err = cs.CoreV1().Pods(ns).Create(ctx, pod("tag", img), metav1.CreateOptions{})
		return err == nil
	})
	if got := created.Spec.Containers[0].Image; got != img {
		t.Fatalf("image %q, want the tag as written, %q", got, img)
	}
	if len(*warnings) != 1 || (*warnings)[0] != wantWarning {
		t.Fatalf("warnings %q\nwant [%q]", *warnings, wantWarning)
	}
}

// TestImageVolumesAreJudged: an image volume is an image the kubelet pulls;
// it meets the same policies as containers and is pinned like them.
func TestImageVolumesAreJudged(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	app, appDigest := h.push(t, "vol:app")
	h.sign(t, app, appDigest)
	data, dataDigest := h.push(t, "vol:data")
	h.sign(t, data, dataDigest)
	unsigned, unsignedDigest := h.push(t, "vol:unsigned")
	h.policy(t, labelled(h.kmsPolicy("e2e-vol", h.repo+"/vol", h.alias, v1alpha1.ModeEnforce)), metav1.ConditionTrue)
	ns := h.namespace(t, "", nil)
	pods := h.cs.CoreV1().Pods(ns)

	withVolume := func(name, image string) *corev1.Pod {
		p := pod(name, app+"@"+appDigest)
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: image}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		return p
	}
	t.Run("an unsigned image volume is denied", func(t *testing.T) {
		_, err := pods.Create(ctx, withVolume("unsigned-volume", unsigned), metav1.CreateOptions{})
		want := h.denial(t, "pods", fmt.Sprintf(`image %s@%s (spec.volumes[0].image.reference) denied by ClusterImagePolicy "e2e-vol": no valid signature from authority "ci-kms" (awskms:///%s): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`, unsigned, unsignedDigest, h.alias))
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("got:  %v\nwant: %s", err, want)
		}
	})
	t.Run("a signed image volume by tag is pinned", func(t *testing.T) {
		p, err := pods.Create(ctx, withVolume("signed-volume", data), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Spec.Volumes[0].Image.Reference; got != data+"@"+dataDigest {
			t.Fatalf("image volume %q, want %q", got, data+"@"+dataDigest)
		}
	})
	t.Run("a deployment template's unsigned image volume is denied", func(t *testing.T) {
		d := deployment("unsigned-volume", app+"@"+appDigest)
		d.Spec.Template.Spec.Volumes = withVolume("", unsigned).Spec.Volumes
		_, err := h.cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		want := h.denial(t, "deployments", fmt.Sprintf(`image %s@%s (spec.template.spec.volumes[0].image.reference) denied by ClusterImagePolicy "e2e-vol": no valid signature from authority "ci-kms" (awskms:///%s): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`, unsigned, unsignedDigest, h.alias))
		if err == nil || err.Error() != want {
			t.Fatalf("got:  %v\nwant: %s", err, want)
		}
	})
}

// TestEverySpellingMeetsThePolicy: the registry host spelled in upper case
// is the same registry; the policy written for its canonical spelling
// governs it (before, it was ungoverned and admitted).
func TestEverySpellingMeetsThePolicy(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	host, port, ok := strings.Cut(h.env.Registry, ":")
	if !ok || (host != "127.0.0.1" && host != "localhost") {
		t.Fatalf("stack registry %q is not a loopback host:port", h.env.Registry)
	}
	// localhost and LOCALHOST name the registry the stack serves on 127.0.0.1.
	canonical := "localhost:" + port + strings.TrimPrefix(h.repo, h.env.Registry)
	shouted := "LOCALHOST:" + port + strings.TrimPrefix(h.repo, h.env.Registry)
	_, signedDigest := h.push(t, "spell:signed")
	h.sign(t, h.repo+"/spell:signed", signedDigest)
	_, unsignedDigest := h.push(t, "spell:unsigned")
	h.policy(t, labelled(h.kmsPolicy("e2e-spell", canonical+"/spell", h.alias, v1alpha1.ModeEnforce)), metav1.ConditionTrue)
	pods := h.cs.CoreV1().Pods(h.namespace(t, "", nil))

	t.Run("an unsigned image spelled in upper case is denied", func(t *testing.T) {
		img := shouted + "/spell:unsigned"
		_, err := pods.Create(ctx, pod("unsigned", img), metav1.CreateOptions{})
		want := h.denial(t, "pods", fmt.Sprintf(`image %s@%s (spec.containers[0].image) denied by ClusterImagePolicy "e2e-spell": no valid signature from authority "ci-kms" (awskms:///%s): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`, img, unsignedDigest, h.alias))
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("got:  %v\nwant: %s", err, want)
		}
	})
	t.Run("a signed one is pinned in the user's spelling", func(t *testing.T) {
		img := shouted + "/spell:signed"
		p, err := pods.Create(ctx, pod("signed", img), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Spec.Containers[0].Image; got != img+"@"+signedDigest {
			t.Fatalf("image %q, want %q", got, img+"@"+signedDigest)
		}
	})
}

// TestBestEffortRevocationWarns: when AWS Signer cannot be reached, a
// BestEffort policy admits and kubectl shows why; Enforce denies.
func TestBestEffortRevocationWarns(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	const (
		profile = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/E2EProfile"
		job     = "arn:aws:signer:us-east-1:123456789012:/signing-jobs/0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6"
	)
	chain, roots := signerChain(t)
	// signed pushes an image signed as AWS Signer does and returns it by digest.
	signed := func(repoTag string) string { return h.signerSigned(t, chain, repoTag, profile, job) }
	signerPolicy := func(name, repo string, mode v1alpha1.RevocationMode) *v1alpha1.ClusterImagePolicy {
		return labelled(&v1alpha1.ClusterImagePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.ClusterImagePolicySpec{
				Images:      []v1alpha1.ImageGlob{{Glob: h.repo + "/" + repo}},
				Authorities: []v1alpha1.Authority{{Name: "aws-signer", Signer: &v1alpha1.SignerAuthority{Profiles: []string{profile}, Revocation: mode}}},
			},
		})
	}

	// Signer's endpoint for this webhook process: nothing listens on port 1.
	t.Setenv("AWS_ENDPOINT_URL_SIGNER", "http://127.0.0.1:1")
	label := fmt.Sprintf("signet-e2e-besteffort-%d", os.Getpid())
	h.instance(t, label, 10, "--no-match-policy=allow", "--aws-signer-roots="+roots, "--mutating-webhook-configuration=")
	ns := h.plainNamespace(t, map[string]string{label: "true"})

	t.Run("BestEffort admits and says revocation was not checked", func(t *testing.T) {
		byDigest := signed("besteffort:v1")
		h.policy(t, signerPolicy("e2e-besteffort", "besteffort", v1alpha1.RevocationBestEffort), metav1.ConditionTrue)
		cs, warnings := h.warningClient(t)
		if err := whenCompiled(t, func() error {
			_, err := cs.CoreV1().Pods(ns).Create(ctx, pod("besteffort", byDigest), metav1.CreateOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		prefix := fmt.Sprintf(`image %s (spec.containers[0].image) admitted by ClusterImagePolicy "e2e-besteffort" (authority "aws-signer") with a warning: revocation of signing job %s not checked: `, byDigest, job)
		const suffix = "; admitted because revocation is BestEffort"
		if len(*warnings) != 1 || !strings.HasPrefix((*warnings)[0], prefix) || !strings.HasSuffix((*warnings)[0], suffix) {
			t.Fatalf("warnings %q\nwant one: %s…%s", *warnings, prefix, suffix)
		}
	})
	t.Run("Enforce denies, blaming Signer's reachability, not the signature", func(t *testing.T) {
		byDigest := signed("enforce:v1")
		h.policy(t, signerPolicy("e2e-revocation-enforce", "enforce", v1alpha1.RevocationEnforce), metav1.ConditionTrue)
		err := whenCompiled(t, func() error {
			_, err := h.cs.CoreV1().Pods(ns).Create(ctx, pod("enforce", byDigest), metav1.CreateOptions{})
			return err
		})
		want := h.denial(t, "pods", fmt.Sprintf(`image %s (spec.containers[0].image) denied by ClusterImagePolicy "e2e-revocation-enforce": no valid signature from authority "aws-signer" (signer profile %s): could not check revocation with AWS Signer in us-east-1: cannot connect to 127.0.0.1:1: connect: connection refused. This is a transient failure: retry; if it persists, check that Signet can reach the registry and AWS.`, byDigest, profile))
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("got:  %v\nwant: %s", err, want)
		}
	})
}

// labelled marks a policy for this suite's policy webhook (see register).
func labelled(p *v1alpha1.ClusterImagePolicy) *v1alpha1.ClusterImagePolicy {
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[judgedLabel] = "true"
	return p
}

// warningClient is a clientset that collects the API server's warnings.
func (h *harness) warningClient(t *testing.T) (kubernetes.Interface, *[]string) {
	t.Helper()
	warnings := &[]string{}
	cfg := rest.CopyConfig(h.env.RESTConfig(t))
	cfg.WarningHandler = warningCollector(func(msg string) { *warnings = append(*warnings, msg) })
	return mustClientset(t, cfg), warnings
}
