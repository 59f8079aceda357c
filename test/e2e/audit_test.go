package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/notaryproject/notation-core-go/signature/jws"
	notationregistry "github.com/notaryproject/notation-go/registry"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/test/fixtures"
	signertest "github.com/signet-dev/signet/test/servers/signer"
	"github.com/signet-dev/signet/test/signerpki"
)

// TestContinuousValidation: Pods that no webhook judged (as if Signet had
// not been installed) are judged by continuous validation against policies
// created after them; drift is reported as Events, ClusterImagePolicy
// status and metrics, by the one replica holding the Lease, and a signing
// job revoked after admission is reported on a later cycle.
func TestContinuousValidation(t *testing.T) {
	h := setup(t)
	localOnly(t, "it starts two webhook processes with continuous validation on")
	ctx := context.Background()
	pid := os.Getpid()

	// AWS Signer, for the revocation case: an in-process test server.
	signer := signertest.New()
	srv := httptest.NewServer(signer)
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL_SIGNER", srv.URL)
	chain, roots := signerChain(t)

	signed, signedDigest := h.push(t, "audit:signed")
	h.sign(t, signed, signedDigest)
	unsigned, unsignedDigest := h.push(t, "audit:unsigned")
	revoked := h.signerSigned(t, chain, "audit-signer:v1", auditProfile, auditJob)

	// Pods started where no webhook judges them.
	ns := h.plainNamespace(t, nil)
	exempt := h.plainNamespace(t, nil)
	mustCreate := func(ns string, p *corev1.Pod) *corev1.Pod {
		t.Helper()
		got, err := h.cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	mustCreate(ns, pod("signed", signed))
	bad := mustCreate(ns, pod("unsigned", unsigned))
	badExempt := mustCreate(exempt, pod("unsigned", unsigned))
	unreachable := mustCreate(ns, pod("unreachable", "127.0.0.1:1/audit/app@sha256:"+strings.Repeat("0", 64)))
	signerPod := mustCreate(ns, pod("signer", revoked))
	brokenGlass := pod("break-glass", h.repo+"/audit-bg@"+unsignedBGDigest(t, h))
	brokenGlass.Annotations = map[string]string{v1alpha1.BreakGlassAnnotation: "INC-4711: signing service down"}
	brokenGlass = mustCreate(ns, brokenGlass)

	// The policies come after the Pods.
	h.policy(t, labelled(h.kmsPolicy("e2e-audit", h.repo+"/audit", h.alias, v1alpha1.ModeEnforce)), metav1.ConditionTrue)
	h.policy(t, labelled(h.kmsPolicy("e2e-audit-unreachable", "127.0.0.1:1/audit/**", h.alias, v1alpha1.ModeEnforce)), metav1.ConditionTrue)
	h.policy(t, labelled(&v1alpha1.ClusterImagePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-audit-signer"},
		Spec: v1alpha1.ClusterImagePolicySpec{
			Images:      []v1alpha1.ImageGlob{{Glob: h.repo + "/audit-signer"}},
			Authorities: []v1alpha1.Authority{{Name: "aws-signer", Signer: &v1alpha1.SignerAuthority{Profiles: []string{auditProfile}}}},
		},
	}), metav1.ConditionTrue)

	bg := labelled(h.kmsPolicy("e2e-audit-breakglass", h.repo+"/audit-bg", h.alias, v1alpha1.ModeEnforce))
	bg.Spec.BreakGlass = &v1alpha1.BreakGlass{Allowed: true}
	h.policy(t, bg, metav1.ConditionTrue)

	lease := fmt.Sprintf("signet-e2e-audit-%d", pid)
	flags := []string{
		"--audit-interval=1s", "--namespace=default", "--audit-lease=" + lease,
		"--exempt-namespaces=kube-system," + exempt, "--no-match-policy=allow", "--mutating-webhook-configuration=",
		"--aws-signer-roots=" + roots,
		// A revocation is seen once the answer and the verdict resting on it expire.
		"--revocation-ttl=1s", "--cache-verified-ttl=1s",
	}
	replicas := []*fixtures.Webhook{
		h.instance(t, fmt.Sprintf("signet-e2e-audit-a-%d", pid), 10, flags...),
		h.instance(t, fmt.Sprintf("signet-e2e-audit-b-%d", pid), 10, flags...),
	}

	// One replica leads; only it audits.
	var leader, follower *fixtures.Webhook
	waitFor(t, func() bool {
		cycles := []float64{metric(t, replicas[0], "signet_audit_cycle_duration_seconds_count"), metric(t, replicas[1], "signet_audit_cycle_duration_seconds_count")}
		switch {
		case cycles[0] > 0 && cycles[1] == 0:
			leader, follower = replicas[0], replicas[1]
		case cycles[1] > 0 && cycles[0] == 0:
			leader, follower = replicas[1], replicas[0]
		}
		return leader != nil
	})

	wantNote := fmt.Sprintf(`image %s@%s (spec.containers[0].image) denied by ClusterImagePolicy "e2e-audit": no valid signature from authority "ci-kms" (awskms:///%s): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`, unsigned, unsignedDigest, h.alias)
	t.Run("an unsigned Pod started without the webhook gets one Warning Event", func(t *testing.T) {
		h.expectAuditWarning(t, bad, "ImageNotAdmissible", wantNote)
	})
	t.Run("an exempt namespace is reported as audit-only", func(t *testing.T) {
		h.expectAuditWarning(t, badExempt, "ImageNotAdmissible", "audit-only (exempt namespace): "+wantNote)
	})
	t.Run("an unreachable registry is unverifiable, not a violation", func(t *testing.T) {
		e := h.waitEvent(t, ns, "Pod", unreachable.Name, "ImageUnverifiable")
		if e.Type != "Warning" || !strings.Contains(e.Note, "127.0.0.1:1") || !strings.Contains(e.Note, "This is a transient failure") {
			t.Fatalf("event %s %q", e.Type, e.Note)
		}
	})
	t.Run("a Pod admitted by break-glass stays visible", func(t *testing.T) {
		h.expectAuditWarning(t, brokenGlass, "ImageRunsByBreakGlass", fmt.Sprintf(`runs by break-glass (reason "INC-4711: signing service down"): image %s (spec.containers[0].image) admitted by break-glass despite ClusterImagePolicy "e2e-audit-breakglass": no valid signature from authority "ci-kms" (awskms:///%s): no signature found. Sign this digest in your pipeline with one of the policy's authorities. Replace the Pod with one whose images verify.`, brokenGlass.Spec.Containers[0].Image, h.alias))
	})
	t.Run("ClusterImagePolicy status counts what runs", func(t *testing.T) {
		// verified, violations, unverifiable, break-glass
		for name, want := range map[string][4]int32{"e2e-audit": {1, 2, 0, 0}, "e2e-audit-unreachable": {0, 0, 1, 0}, "e2e-audit-signer": {1, 0, 0, 0}, "e2e-audit-breakglass": {0, 0, 0, 1}} {
			waitFor(t, func() bool {
				got := &v1alpha1.ClusterImagePolicy{}
				if err := h.c.Get(ctx, client.ObjectKey{Name: name}, got); err != nil {
					t.Fatal(err)
				}
				r := got.Status.Running
				return r != nil && [4]int32{r.Verified, r.Violations, r.Unverifiable, r.BreakGlass} == want && !r.LastEvaluated.IsZero()
			})
		}
	})
	t.Run("metrics by state, policy and namespace, on the leader only", func(t *testing.T) {
		for series, want := range map[string]float64{
			fmt.Sprintf(`signet_running_images{namespace=%q,policy="e2e-audit",state="violation"}`, ns):                1,
			fmt.Sprintf(`signet_running_images{namespace=%q,policy="e2e-audit",state="verified"}`, ns):                 1,
			fmt.Sprintf(`signet_running_images{namespace=%q,policy="e2e-audit",state="violation"}`, exempt):            1,
			fmt.Sprintf(`signet_running_images{namespace=%q,policy="e2e-audit-unreachable",state="unverifiable"}`, ns): 1,
		} {
			if got := metric(t, leader, series); got != want {
				t.Errorf("%s = %v, want %v", series, got, want)
			}
		}
		if got := metric(t, follower, "signet_audit_cycle_duration_seconds_count"); got != 0 {
			t.Errorf("the follower ran %v cycles", got)
		}
	})
	t.Run("a signing job revoked after admission is reported on a later cycle", func(t *testing.T) {
		signer.RevokeJob(auditJob)
		h.expectAuditWarning(t, signerPod, "ImageNotAdmissible", fmt.Sprintf(`image %s (spec.containers[0].image) denied by ClusterImagePolicy "e2e-audit-signer": no valid signature from authority "aws-signer" (signer profile %s): revoked in AWS Signer: signing job %s. The signature was revoked: deploy an image signed by a signing job that was not revoked.`, revoked, auditProfile, auditJob))
	})
	t.Run("an Event per change, not per cycle", func(t *testing.T) {
		start := metric(t, leader, "signet_audit_cycle_duration_seconds_count")
		waitFor(t, func() bool { return metric(t, leader, "signet_audit_cycle_duration_seconds_count") >= start+3 })
		if n := len(h.events(t, ns, "Pod", bad.Name, "ImageNotAdmissible")); n != 1 {
			t.Fatalf("%d ImageNotAdmissible Events after more cycles, want 1", n)
		}
	})
}

// unsignedBGDigest pushes an unsigned image for the break-glass case.
func unsignedBGDigest(t *testing.T, h *harness) string {
	_, digest := h.push(t, "audit-bg:v1")
	return digest
}

const (
	auditProfile = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/E2EAudit"
	auditJob     = "arn:aws:signer:us-east-1:123456789012:/signing-jobs/1d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6"
)

// signerChain makes a test AWS Signer chain and writes its root to a PEM
// file for --aws-signer-roots.
func signerChain(t *testing.T) (*signerpki.Chain, string) {
	t.Helper()
	root, err := signerpki.NewRoot("Signet E2E Signer Code Signing Root CA G1")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := root.Intermediate("Signet E2E Signer us-east-1 Code Signing CA G1")
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ca.Leaf(signerpki.Validity{})
	if err != nil {
		t.Fatal(err)
	}
	roots := filepath.Join(t.TempDir(), "signer-roots.pem")
	if err := os.WriteFile(roots, root.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return chain, roots
}

// signerSigned pushes an image signed as AWS Signer does (a version of
// profile, by job) and returns it by digest.
func (h *harness) signerSigned(t *testing.T, chain *signerpki.Chain, repoTag, profile, job string) string {
	t.Helper()
	img, digest := h.push(t, repoTag)
	r, err := name.NewDigest(img[:strings.LastIndex(img, ":")] + "@" + digest)
	if err != nil {
		t.Fatal(err)
	}
	repo := notationregistry.NewRepository(oci.New(oci.Options{}).OrasRepository(r.Context(), nil))
	if err := chain.Sign(context.Background(), repo, digest, jws.MediaTypeEnvelope, signerpki.Attributes{ProfileVersionARN: profile + "/abcdef1234", JobARN: job}); err != nil {
		t.Fatal(err)
	}
	return r.String()
}

// events lists the events.k8s.io Events with reason regarding kind/name in ns.
func (h *harness) events(t *testing.T, ns, kind, name, reason string) []eventsv1.Event {
	t.Helper()
	l, err := h.cs.EventsV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range l.Items {
		if e.Regarding.Kind == kind && e.Regarding.Name == name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for the first Event with reason regarding kind/name in ns.
func (h *harness) waitEvent(t *testing.T, ns, kind, name, reason string) eventsv1.Event {
	t.Helper()
	var got []eventsv1.Event
	waitFor(t, func() bool {
		got = h.events(t, ns, kind, name, reason)
		return len(got) > 0
	})
	return got[0]
}

// expectAuditWarning waits for continuous validation's Warning Event about
// p and checks its note.
func (h *harness) expectAuditWarning(t *testing.T, p *corev1.Pod, reason, note string) {
	t.Helper()
	e := h.waitEvent(t, p.Namespace, "Pod", p.Name, reason)
	if e.Type != corev1.EventTypeWarning || e.Note != note || e.ReportingController != "signet-audit" || e.Regarding.UID != p.UID {
		t.Fatalf("event %s %s by %q about %s:\n got: %s\nwant: %s", e.Type, e.Reason, e.ReportingController, e.Regarding.UID, e.Note, note)
	}
}

// metric reads one series (name{labels} as Prometheus writes it) from a
// webhook's metrics endpoint; 0 when absent.
func metric(t *testing.T, w *fixtures.Webhook, series string) float64 {
	t.Helper()
	resp, err := http.Get(w.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}
