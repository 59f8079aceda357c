package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/notaryproject/notation-core-go/signature/jws"
	notationregistry "github.com/notaryproject/notation-go/registry"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/admission"
	"github.com/signet-dev/signet/test/fixtures"
	"github.com/signet-dev/signet/test/podimage"
	"github.com/signet-dev/signet/test/signerpki"
)

// demoLabel marks the namespace the demo's webhook judges.
const demoLabel = "signet-demo"

// The demo's AWS Signer signing profile, with AWS's ARN shapes.
const (
	signerProfileARN = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/DemoProfile"
	signerVersionARN = signerProfileARN + "/abcdef1234"
	signerJobARN     = "arn:aws:signer:us-east-1:123456789012:/signing-jobs/0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6"
)

// admissionDemo runs the webhook locally against the stack and shows what
// kubectl users see: a signed Pod admitted, an unsigned Pod and Deployment
// refused, an AWS Signer-signed Pod admitted, a Warn-mode policy warning,
// and attestations: a clean scan admitted, a CRITICAL finding refused.
func (d *demo) admissionDemo() error {
	env := map[string]string{}
	for _, kv := range d.env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
		os.Setenv(k, v) // the AWS SDK and registry client read the stack's settings
	}
	registry := env["SIGNET_REGISTRY"]

	d.say("A test AWS Signer PKI (root, regional CA, signing leaf; P-384 like Signer's) whose root replaces the embedded ones")
	chain, rootsFile, err := signerChain()
	if err != nil {
		return err
	}
	defer os.Remove(rootsFile)
	fmt.Printf("root %q -> %s\n", chain.Certs[len(chain.Certs)-1].Subject.CommonName, rootsFile)

	d.say("Start the Signet webhook locally; the API server calls it over TLS")
	stop, err := d.startWebhook(env["KUBECONFIG"], rootsFile)
	if err != nil {
		return err
	}
	defer stop()

	d.say("A KMS key for the CI pipeline (on the KMS test server, through the AWS SDK)")
	alias := fmt.Sprintf("alias/demo-cosign-%d", time.Now().Unix())
	if err := fixtures.CreateKMSAlias(d.ctx, alias); err != nil {
		return err
	}
	fmt.Printf("created %s\n", alias)

	d.say("Push three images; sign two as CI does (cosign v2 legacy signature, cosign v3 Sigstore bundle)")
	repo := registry + "/demo"
	images := map[string]string{}
	for _, tag := range []string{"api", "worker", "unsigned"} {
		ref := repo + "/" + tag + ":v1"
		digest, err := pushRunnable(d.ctx, ref, tag)
		if err != nil {
			return err
		}
		images[tag] = ref
		fmt.Printf("pushed %s (%s)\n", ref, digest)
		switch tag {
		case "api":
			err = d.show(filepath.Join(d.root, "bin", "cosign"), "sign", "--yes", "--tlog-upload=false", "--key", "awskms:///"+alias, repo+"/api@"+digest)
		case "worker":
			err = d.show(filepath.Join(d.root, "bin", "cosign3"), "sign", "--yes", "--use-signing-config=false", "--tlog-upload=false", "--key", "awskms:///"+alias, repo+"/worker@"+digest)
		}
		if err != nil {
			return err
		}
	}

	d.say("Push one more image and sign it as AWS Signer does (notation, Signer's plugin attributes, test chain)")
	images["signer-app"] = repo + "/signer-app:v1"
	signerDigest, err := pushRunnable(d.ctx, images["signer-app"], "signer-app")
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s (%s)\n", images["signer-app"], signerDigest)
	if err := signImage(d.ctx, chain, repo+"/signer-app@"+signerDigest); err != nil {
		return fmt.Errorf("signing signer-app: %w", err)
	}
	fmt.Printf("signed %s@%s with signing profile version %s\n", images["signer-app"], signerDigest, signerVersionARN)

	d.say("Apply the policy: images under " + repo + " need a signature from the CI key or from the AWS Signer profile")
	policy := fmt.Sprintf(`apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata:
  name: demo
spec:
  images:
  - glob: "%s/**"
  authorities:
  - name: ci-kms
    key:
      kms: awskms:///%s
  - name: aws-signer
    signer:
      profiles:
      - %s
      # The demo has no AWS Signer endpoint to ask for revocation status;
      # production uses Enforce.
      revocation: Skip
`, repo, alias, signerProfileARN)
	if err := d.showInput(policy, d.kubectl, "apply", "-f", "-"); err != nil {
		return err
	}
	if err := d.show(d.kubectl, "wait", "--for=condition=Ready", "--timeout=60s", "clusterimagepolicy/demo"); err != nil {
		return err
	}
	defer d.quietRun(d.kubectl, "delete", "clusterimagepolicy", "demo", "demo-warn", "--ignore-not-found")
	if err := d.show(d.kubectl, "get", "cip"); err != nil {
		return err
	}
	if err := d.show(d.kubectl, "create", "namespace", "demo"); err != nil {
		return err
	}
	defer d.quietRun(d.kubectl, "delete", "namespace", "demo", "--wait=false")
	if err := d.show(d.kubectl, "label", "namespace", "demo", demoLabel+"=true"); err != nil {
		return err
	}

	d.say("Signed images are admitted")
	if err := d.show(d.kubectl, "-n", "demo", "run", "api", "--image="+images["api"]); err != nil {
		return fmt.Errorf("the signed Pod was refused: %w", err)
	}
	if err := d.show(d.kubectl, "-n", "demo", "run", "worker", "--image="+images["worker"]); err != nil {
		return fmt.Errorf("the bundle-signed Pod was refused: %w", err)
	}
	d.say("An image signed by AWS Signer (test chain) is admitted by the same policy: ANY authority suffices")
	if err := d.show(d.kubectl, "-n", "demo", "run", "signer-app", "--image="+images["signer-app"]); err != nil {
		return fmt.Errorf("the AWS Signer-signed Pod was refused: %w", err)
	}
	d.say("An unsigned image is refused, with the image, the policy, the authority, the cause and what to do")
	if err := d.show(d.kubectl, "-n", "demo", "run", "unsigned", "--image="+images["unsigned"]); err == nil {
		return fmt.Errorf("the unsigned Pod was admitted")
	}
	d.say("A Deployment with an unsigned image fails at once, not one level down")
	if err := d.show(d.kubectl, "-n", "demo", "create", "deployment", "unsigned", "--image="+images["unsigned"]); err == nil {
		return fmt.Errorf("the unsigned Deployment was admitted")
	}

	d.say("Roll a new requirement out in Warn mode: the Pod runs, kubectl shows a warning")
	warn := fmt.Sprintf(`apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata:
  name: demo-warn
spec:
  mode: Warn
  images:
  - glob: "%s/staging/**"
  authorities:
  - name: ci-kms
    key:
      kms: awskms:///%s
`, registry, alias)
	if err := d.showInput(warn, d.kubectl, "apply", "-f", "-"); err != nil {
		return err
	}
	if err := d.show(d.kubectl, "wait", "--for=condition=Ready", "--timeout=60s", "clusterimagepolicy/demo-warn"); err != nil {
		return err
	}
	staging := registry + "/staging/app:v1"
	if _, err := pushRunnable(d.ctx, staging, "staging"); err != nil {
		return err
	}
	if err := d.show(d.kubectl, "-n", "demo", "run", "staging", "--image="+staging); err != nil {
		return err
	}
	if err := d.attestationDemo(registry, alias); err != nil {
		return err
	}
	if env["SIGNET_NODE"] == "" {
		d.say("The stack runs without a node (SIGNET_STACK_NODE=false): the admitted Pods stay Pending")
		return d.show(d.kubectl, "-n", "demo", "get", "pods")
	}
	d.say("On the node, the admitted Pods run the digests Signet verified; the unsigned one does not exist")
	if err := d.show(d.kubectl, "-n", "demo", "wait", "--for=condition=Ready", "--timeout=90s", "pod/api", "pod/worker", "pod/signer-app", "pod/staging", "pod/scanned-clean"); err != nil {
		return err
	}
	return d.show(d.kubectl, "-n", "demo", "get", "pods", "-o",
		"custom-columns=NAME:.metadata.name,STATUS:.status.phase,NODE:.spec.nodeName,IMAGE:.spec.containers[0].image,RUNNING:.status.containerStatuses[0].imageID")
}

// pushRunnable pushes a runnable image (hack/pause) as ref and returns its
// digest: the node pulls and runs what the demo admits.
func pushRunnable(ctx context.Context, ref, variant string) (string, error) {
	d, err := podimage.Push(ctx, ref, "demo-"+variant)
	if err != nil {
		return "", err
	}
	return d.DigestStr(), nil
}

// startWebhook builds and runs cmd/webhook with a fresh serving certificate
// and registers it for Pods and Deployments in the demo namespace. The
// webhook trusts the AWS Signer roots in signerRoots (a PEM file).
func (d *demo) startWebhook(kubeconfig, signerRoots string) (func(), error) {
	bin := filepath.Join(d.root, "bin", "webhook")
	if err := d.show("go", "build", "-o", bin, "./cmd/webhook"); err != nil {
		return nil, err
	}
	w, err := fixtures.StartWebhook(bin, kubeconfig, filepath.Join(d.root, ".stack", "logs", "demo-webhook.log"),
		"--aws-signer-roots="+signerRoots, "--no-match-policy=allow", "--mutating-webhook-configuration=signet-demo-mutating")
	if err != nil {
		return nil, err
	}
	fmt.Printf("webhook listening on %s (log: %s)\n", w.URL(""), w.Log)
	stop := w.Stop
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		stop()
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		stop()
		return nil, err
	}
	// The configurations config/ and the chart install, pointed at this
	// process and at the demo's namespaces.
	demo := &metav1.LabelSelector{MatchLabels: map[string]string{demoLabel: "true"}}
	vwc, mwc := admission.WebhookConfigurations(admission.ConfigurationOptions{
		Name: "signet-demo",
		Client: func(path string) admissionregistrationv1.WebhookClientConfig {
			url := w.URL(path)
			return admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: w.CABundle}
		},
		NamespaceSelector: demo,
		PolicySelector:    demo,
		TimeoutSeconds:    10,
	})
	remove := func() {
		_ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), vwc.Name, metav1.DeleteOptions{})
		_ = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), mwc.Name, metav1.DeleteOptions{})
	}
	remove()
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(d.ctx, vwc, metav1.CreateOptions{}); err != nil {
		stop()
		return nil, err
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(d.ctx, mwc, metav1.CreateOptions{}); err != nil {
		remove()
		stop()
		return nil, err
	}
	return func() {
		remove()
		stop()
	}, nil
}

func (d *demo) quietRun(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), d.env...)
	_ = cmd.Run()
}

// signerChain makes a test AWS Signer chain with a commercial-partition
// root and writes the root to a temporary PEM file for --aws-signer-roots.
func signerChain() (*signerpki.Chain, string, error) {
	root, err := signerpki.NewRoot("Signet Demo Signer Code Signing Root CA G1")
	if err != nil {
		return nil, "", err
	}
	ca, err := root.Intermediate("Signet Demo Signer us-east-1 Code Signing CA G1")
	if err != nil {
		return nil, "", err
	}
	chain, err := ca.Leaf(signerpki.Validity{})
	if err != nil {
		return nil, "", err
	}
	f, err := os.CreateTemp("", "signet-demo-signer-roots-*.pem")
	if err != nil {
		return nil, "", err
	}
	if _, err := f.Write(root.PEM()); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return nil, "", err
	}
	return chain, f.Name(), nil
}

// signImage signs ref (repository@digest) with chain as AWS Signer does and
// pushes the notation signature next to the image.
func signImage(ctx context.Context, chain *signerpki.Chain, ref string) error {
	r, err := name.NewDigest(ref)
	if err != nil {
		return err
	}
	repo := notationregistry.NewRepository(oci.New(oci.Options{}).OrasRepository(r.Context(), nil))
	return chain.Sign(ctx, repo, r.DigestStr(), jws.MediaTypeEnvelope, signerpki.Attributes{
		ProfileVersionARN: signerVersionARN,
		JobARN:            signerJobARN,
	})
}
