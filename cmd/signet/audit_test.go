package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/test/stack"
)

// auditCluster is the stack's API server with Pods in namespaces of their
// own. The stack has no kubelet: Pods stay Pending, and the spec's digest
// is judged, unless a test writes the status a kubelet would.
type auditCluster struct {
	c client.Client
}

func newAuditCluster(t *testing.T) *auditCluster {
	t.Helper()
	env := stack.Load(t)
	env.InstallCRD(t)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.RESTConfig(t), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &auditCluster{c: c}
}

func (a *auditCluster) create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := a.c.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.c.Delete(context.Background(), obj) })
}

// namespace creates a namespace holding one Pod per name -> image. The
// test plays the kubelet (it writes the drifted Pod's status), so its Pods
// select a node that does not exist: the stack's own kubelet, when it has
// one, never runs them or rewrites their status. test/e2e judges what a
// real kubelet reports.
func (a *auditCluster) namespace(t *testing.T, pods map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "signet-cli-audit-"}}
	a.create(t, ns)
	for name, image := range pods {
		a.create(t, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name},
			Spec: corev1.PodSpec{
				NodeSelector: map[string]string{"signet.dev/test": "no-such-node"},
				Containers:   []corev1.Container{{Name: "app", Image: image}},
			},
		})
	}
	return ns.Name
}

func TestAudit(t *testing.T) {
	f := newCLIFixture(t)
	cluster := newAuditCluster(t)
	ctx := context.Background()

	// A policy in the cluster, created after the Pods as if Signet came later.
	ns := cluster.namespace(t, map[string]string{"signed": f.signed, "unsigned": f.unsigned, "drifted": f.signed})
	// The kubelet reports the digest it runs: the tag moved to an unsigned image.
	drifted := &corev1.Pod{}
	if err := cluster.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "drifted"}, drifted); err != nil {
		t.Fatal(err)
	}
	drifted.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: f.signed, ImageID: f.repo + "/app@" + f.unsignedDigest}}
	if err := cluster.c.Status().Update(ctx, drifted); err != nil {
		t.Fatal(err)
	}
	cipName := fmt.Sprintf("signet-cli-audit-%d", os.Getpid())
	cluster.create(t, &v1alpha1.ClusterImagePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: cipName},
		Spec: v1alpha1.ClusterImagePolicySpec{
			Images:      []v1alpha1.ImageGlob{{Glob: f.repo + "/**"}},
			Authorities: []v1alpha1.Authority{{Name: "ci-kms", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///" + f.alias}}},
		},
	})

	unsignedCause := fmt.Sprintf(`no valid signature from authority "ci-kms" (awskms:///%s): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`, f.alias)
	lines := func(policy, prefix string) string {
		return fmt.Sprintf("VIOLATION: pod %s/drifted: %simage %s@%s (spec.containers[0].image) denied by ClusterImagePolicy %q: %s (judged at the digest running, from the Pod's status; the spec names %s)\n", ns, prefix, f.signed, f.unsignedDigest, policy, unsignedCause, f.signed) +
			fmt.Sprintf("VERIFIED: pod %s/signed: %simage %s@%s (spec.containers[0].image) admitted by ClusterImagePolicy %q (authority \"ci-kms\")\n", ns, prefix, f.signed, f.signedDigest, policy) +
			fmt.Sprintf("VIOLATION: pod %s/unsigned: %simage %s@%s (spec.containers[0].image) denied by ClusterImagePolicy %q: %s\n", ns, prefix, f.unsigned, f.unsignedDigest, policy, unsignedCause) +
			"3 images in 3 Pods: 1 verified, 2 violation\n"
	}

	t.Run("the cluster's policies: violations exit 1", func(t *testing.T) {
		code, out, errOut := f.run(t, "", "audit", "--namespace", ns)
		if want := lines(cipName, ""); code != 1 || out != want {
			t.Fatalf("exit %d\nstdout: %s\nwant:   %s\nstderr: %s", code, out, want, errOut)
		}
	})
	t.Run("--policy files instead of the cluster's", func(t *testing.T) {
		code, out, errOut := f.run(t, "", "audit", "--namespace", ns, "--policy", f.policyFile)
		if want := lines("cli-test", ""); code != 1 || out != want || errOut != "" {
			t.Fatalf("exit %d\nstdout: %s\nwant:   %s\nstderr: %s", code, out, want, errOut)
		}
	})
	t.Run("an exempt namespace is audit-only, or left out", func(t *testing.T) {
		code, out, _ := f.run(t, "", "audit", "--namespace", ns, "--policy", f.policyFile, "--exempt-namespaces", "kube-system,"+ns)
		if want := lines("cli-test", "audit-only (exempt namespace): "); code != 1 || out != want {
			t.Fatalf("exit %d\nstdout: %s\nwant:   %s", code, out, want)
		}
		code, out, _ = f.run(t, "", "audit", "--namespace", ns, "--policy", f.policyFile, "--exempt-namespaces", ns, "--skip-exempt")
		if want := "0 images in 0 Pods\n"; code != 0 || out != want {
			t.Fatalf("exit %d\nstdout: %q, want %q", code, out, want)
		}
	})
	t.Run("json: one result per Pod image", func(t *testing.T) {
		code, out, errOut := f.run(t, "", "audit", "--namespace", ns, "--policy", f.policyFile, "--output", "json")
		if code != 1 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		var got jsonAudit
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		msgs := strings.Split(strings.TrimSuffix(lines("cli-test", ""), "\n"), "\n")
		message := func(i int) string { return msgs[i][strings.Index(msgs[i], ": image ")+2:] }
		// Two digests, each verified once (the drifted Pod runs the unsigned one).
		if got.Cost.Verifications != 2 || got.Cost.RegistryRequests == 0 || got.Cost.Seconds <= 0 {
			t.Fatalf("cost %+v, want 2 verifications and some registry requests", got.Cost)
		}
		got.Cost = jsonCost{}
		for i := range got.Results {
			if len(got.Results[i].Policies) != 1 || got.Results[i].Policies[0].Name != "cli-test" {
				t.Fatalf("results[%d].policies: %+v", i, got.Results[i].Policies)
			}
			got.Results[i].Policies = nil
		}
		want := jsonAudit{Pods: 3, Counts: map[string]int{"verified": 1, "violation": 2}, Results: []jsonResult{
			{Namespace: ns, Pod: "drifted", Field: "spec.containers[0].image", Image: f.signed, Digest: f.unsignedDigest, FromStatus: true,
				State: "violation", Policy: "cli-test", Authority: "ci-kms", Reason: "NoSignature", Message: message(0)},
			{Namespace: ns, Pod: "signed", Field: "spec.containers[0].image", Image: f.signed, Digest: f.signedDigest,
				State: "verified", Policy: "cli-test", Authority: "ci-kms", Reason: "Verified", Message: message(1)},
			{Namespace: ns, Pod: "unsigned", Field: "spec.containers[0].image", Image: f.unsigned, Digest: f.unsignedDigest,
				State: "violation", Policy: "cli-test", Authority: "ci-kms", Reason: "NoSignature", Message: message(2)},
		}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("json:\n%+v\nwant:\n%+v", got, want)
		}
	})
	t.Run("nothing violates: exit 0", func(t *testing.T) {
		clean := cluster.namespace(t, map[string]string{"signed": f.signed})
		code, out, errOut := f.run(t, "", "audit", "--namespace", clean, "--policy", f.policyFile)
		want := fmt.Sprintf("VERIFIED: pod %s/signed: image %s@%s (spec.containers[0].image) admitted by ClusterImagePolicy \"cli-test\" (authority \"ci-kms\")\n1 image in 1 Pod: 1 verified\n", clean, f.signed, f.signedDigest)
		if code != 0 || out != want || errOut != "" {
			t.Fatalf("exit %d\nstdout: %s\nwant:   %s\nstderr: %s", code, out, want, errOut)
		}
	})
	t.Run("an image that cannot be checked: exit 2, not a violation", func(t *testing.T) {
		down := cluster.namespace(t, map[string]string{"app": "127.0.0.1:1/app:v1"})
		p := filepath.Join(t.TempDir(), "down.yaml")
		writeFile(t, p, strings.Replace(mustRead(t, f.policyFile), f.repo+"/**", "127.0.0.1:1/**", 1))
		code, out, errOut := f.run(t, "", "audit", "--namespace", down, "--policy", p)
		prefix := fmt.Sprintf(`UNVERIFIABLE: pod %s/app: image 127.0.0.1:1/app:v1 (spec.containers[0].image) denied: could not resolve tag "v1" to a digest: `, down)
		suffix := "This is a transient failure: retry; if it persists, check that Signet can reach the registry and AWS.\n1 image in 1 Pod: 1 unverifiable\n"
		wantErr := "signet audit: 1 image could not be checked (a registry or AWS did not answer): run again; if it persists, check that this machine reaches them\n"
		if code != 2 || !strings.HasPrefix(out, prefix) || !strings.HasSuffix(out, suffix) || strings.Count(out, "\n") != 2 || errOut != wantErr {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
	})
	t.Run("the cluster cannot be reached: exit 2", func(t *testing.T) {
		kc := filepath.Join(t.TempDir(), "kubeconfig")
		writeFile(t, kc, "apiVersion: v1\nkind: Config\nclusters: [{name: down, cluster: {server: \"https://127.0.0.1:1\"}}]\ncontexts: [{name: down, context: {cluster: down, user: nobody}}]\nusers: [{name: nobody, user: {token: x}}]\ncurrent-context: down\n")
		code, out, errOut := f.run(t, "", "audit", "--kubeconfig", kc, "--timeout", "20s")
		if want := "signet audit: listing ClusterImagePolicies: "; code != 2 || out != "" || !strings.HasPrefix(errOut, want) || !strings.Contains(errOut, "127.0.0.1:1") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		missing := filepath.Join(t.TempDir(), "none")
		code, _, errOut = f.run(t, "", "audit", "--kubeconfig", missing)
		if want := fmt.Sprintf("signet audit: loading the kubeconfig: stat %s: no such file or directory\n", missing); code != 2 || errOut != want {
			t.Fatalf("exit %d\nstderr: %q\nwant:   %q", code, errOut, want)
		}
	})
	t.Run("usage errors: exit 2", func(t *testing.T) {
		code, _, errOut := f.run(t, "", "audit", "--output=yaml", "--no-match-policy=maybe", "nginx")
		want := "signet audit: unexpected arguments [\"nginx\"]: signet audit judges the cluster's Pods (use --namespace to audit one namespace)\n--output \"yaml\": must be text or json\n"
		if code != 2 || !strings.HasPrefix(errOut, want) || !strings.Contains(errOut, `"maybe"`) {
			t.Fatalf("exit %d: %q", code, errOut)
		}
	})
}
