package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/pkg/policy/verify"
	"github.com/signet-dev/signet/test/fixtures"
	"github.com/signet-dev/signet/test/stack"
)

// auditFixture: a real engine (cosign over the KMS test server, the
// stack's registry) with one policy, and a client of the stack's API server.
type auditFixture struct {
	c                client.Client
	dc               discovery.DiscoveryInterface
	engine           *policy.Engine
	policies         []*policy.Policy
	alias            string
	signed, unsigned string // tag references
	signedDigest     string
	unsignedDigest   string
}

func newAuditFixture(t *testing.T) *auditFixture {
	t.Helper()
	env := stack.Load(t)
	ctx := context.Background()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := reportsv1alpha1.Install(scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil { // the OpenReports test uninstalls its CRD
		t.Fatal(err)
	}
	cfg := env.RESTConfig(t)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Each test its own key and repository.
	f := &auditFixture{c: c, dc: dc, alias: fmt.Sprintf("alias/signet-audit-%d-%s", os.Getpid(), t.Name())}
	if err := fixtures.CreateKMSAlias(ctx, f.alias); err != nil {
		t.Fatal(err)
	}
	repo := fmt.Sprintf("%s/audit-%d/%s", env.Registry, os.Getpid(), strings.ToLower(t.Name()))
	f.signed, f.unsigned = repo+"/app:signed", repo+"/app:unsigned"
	if f.signedDigest, err = fixtures.PushRandom(f.signed); err != nil {
		t.Fatal(err)
	}
	if f.unsignedDigest, err = fixtures.PushRandom(f.unsigned); err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("../..")
	if err := fixtures.CosignSign(filepath.Join(root, "bin", "cosign"), f.alias, repo+"/app@"+f.signedDigest); err != nil {
		t.Fatal(err)
	}
	verifiers, err := verify.New(ctx, verify.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cip := &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Spec: v1alpha1.ClusterImagePolicySpec{
		Images:      []v1alpha1.ImageGlob{{Glob: repo + "/**"}},
		Authorities: []v1alpha1.Authority{{Name: "ci-kms", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///" + f.alias}}},
	}}
	p, errs := policy.Compile(ctx, cip, verifiers.Factory(), nil)
	if len(errs) > 0 || p.NotReady != nil {
		t.Fatalf("compile: %v %v", errs, p.NotReady)
	}
	f.policies = []*policy.Policy{p}
	f.engine = &policy.Engine{Cache: policy.NewVerdictCache(policy.CacheOptions{}), Resolver: verifiers.Registry}
	return f
}

// namespace creates a namespace with one Pod per name -> image (Pending:
// the stack has no kubelet).
func (f *auditFixture) namespace(t *testing.T, pods map[string]string) (string, map[string]*corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "signet-audit-"}}
	if err := f.c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.c.Delete(context.Background(), ns) })
	out := map[string]*corev1.Pod{}
	for name, image := range pods {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
		}
		if err := f.c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		out[name] = p
	}
	return ns.Name, out
}

// waitGone waits until obj is deleted (a Pod bound to no node goes at once).
func waitGone(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there: %v", obj.GetName(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
