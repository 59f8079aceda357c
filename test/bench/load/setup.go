package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	signetconfig "github.com/signet-dev/signet/config"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/test/fixtures"
	"github.com/signet-dev/signet/test/servers/registry"
	signertest "github.com/signet-dev/signet/test/servers/signer"
)

// bench is one run's world on the local stack. Every name it creates
// starts with id (signet-bench-<pid>), so other users of the stack are
// never affected; cleanup stops its processes and servers and deletes its
// policies, namespaces, webhook configurations and files (the KMS key and
// the pushed images stay in the stack's test servers).
type bench struct {
	cfg    *config
	out    io.Writer
	id     string
	root   string // repository root
	dir    string // temporary files
	logDir string

	kubeconfig        string
	registry          string // CNCF distribution: no referrers API
	referrersRegistry string // go-containerregistry's, with the referrers API
	// burstRegistry is a private instance of the stack's counting registry
	// (test/servers/registry) in this process, on 127.0.0.1: its counts
	// are the burst's alone, whoever else uses the stack's registries.
	burstRegistry     *registry.Server
	burstRegistryHost string
	restCfg           *rest.Config
	cs                kubernetes.Interface
	c                 client.Client

	alias      string
	cosign     *cosignSigner
	signer     *signerSigner
	signerSrv  *signertest.Server
	namespace  string // judged: the webhook configurations select it
	bin        string
	webhookFlg []string

	cleanups []func()
}

// setup prepares the run: clients, the CRD, the run's namespace, KMS key,
// Signer chain and test servers, and the webhook binary. On error it
// undoes what it did.
func setup(ctx context.Context, cfg *config, out io.Writer) (*bench, error) {
	b := &bench{cfg: cfg, out: out, id: fmt.Sprintf("signet-bench-%d", os.Getpid())}
	ready := false
	defer func() {
		if !ready {
			b.cleanup()
		}
	}()
	var err error
	vars := map[string]*string{"KUBECONFIG": &b.kubeconfig, "SIGNET_REGISTRY": &b.registry, "SIGNET_REFERRERS_REGISTRY": &b.referrersRegistry}
	for k, p := range vars {
		if *p = os.Getenv(k); *p == "" {
			return nil, fmt.Errorf("$%s is not set: start the stack (`make stack-up`) and `source .stack/env`", k)
		}
	}
	for _, k := range []string{"AWS_ENDPOINT_URL_KMS", "AWS_REGION"} {
		if os.Getenv(k) == "" {
			return nil, fmt.Errorf("$%s is not set: `source .stack/env`", k)
		}
	}
	if b.root, err = repoRoot(); err != nil {
		return nil, err
	}
	if b.dir, err = os.MkdirTemp("", b.id+"-"); err != nil {
		return nil, err
	}
	b.later(func() { os.RemoveAll(b.dir) })
	b.logDir = filepath.Join(filepath.Dir(b.kubeconfig), "logs")
	if fi, err := os.Stat(b.logDir); err != nil || !fi.IsDir() {
		b.logDir = b.dir
	}

	if b.restCfg, err = clientcmd.BuildConfigFromFlags("", b.kubeconfig); err != nil {
		return nil, err
	}
	b.restCfg.QPS, b.restCfg.Burst = 200, 400
	if b.cs, err = kubernetes.NewForConfig(b.restCfg); err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	if b.c, err = client.New(b.restCfg, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	b.logf("installing the ClusterImagePolicy CRD")
	if err := installCRD(ctx, b.restCfg); err != nil {
		return nil, err
	}
	b.namespace = b.id
	if err := b.createNamespace(ctx, b.namespace, map[string]string{b.id: "true"}); err != nil {
		return nil, err
	}

	b.logf("creating KMS key %s and an AWS Signer test chain", "alias/"+b.id)
	b.alias = "alias/" + b.id
	if err := fixtures.CreateKMSAlias(ctx, b.alias); err != nil {
		return nil, fmt.Errorf("creating the KMS key: %w", err)
	}
	if b.cosign, err = newCosignSigner(ctx, b.alias); err != nil {
		return nil, err
	}
	if b.signer, err = newSignerSigner(b.dir); err != nil {
		return nil, err
	}
	// An AWS Signer endpoint for revocation checks (Enforce), in this
	// process on 127.0.0.1; the webhook inherits AWS_ENDPOINT_URL_SIGNER.
	b.signerSrv = signertest.New()
	srv := httptest.NewServer(b.signerSrv)
	b.later(srv.Close)
	if err := os.Setenv("AWS_ENDPOINT_URL_SIGNER", srv.URL); err != nil {
		return nil, err
	}

	b.burstRegistry = registry.New()
	regSrv := httptest.NewServer(b.burstRegistry)
	b.later(regSrv.Close)
	b.burstRegistryHost = strings.TrimPrefix(regSrv.URL, "http://")

	if b.bin = cfg.Webhook; b.bin == "" {
		b.logf("building ./cmd/webhook")
		if b.bin, err = fixtures.WebhookBinary(); err != nil {
			return nil, err
		}
	}
	b.webhookFlg = []string{"--no-match-policy=allow", "--aws-signer-roots=" + b.signer.rootsFile}
	ready = true
	return b, nil
}

// startWebhook starts a webhook for one part of the run.
func (b *bench) startWebhook(name string) (*webhook, error) {
	return b.startWebhookWith(name)
}

// startWebhookWith is startWebhook with flags added to the run's.
func (b *bench) startWebhookWith(name string, flags ...string) (*webhook, error) {
	log := filepath.Join(b.logDir, b.id+"-"+name+".log")
	w, err := startWebhook(b.bin, b.kubeconfig, log, b.cfg.PprofDir != "", append(append([]string(nil), b.webhookFlg...), flags...)...)
	if err != nil {
		return nil, err
	}
	b.logf("webhook %s: pid %d, port %d, log %s", name, w.PID(), w.Port, log)
	return w, nil
}

// policies applies the run's two policies and waits until they are Ready:
// cosign with the run's KMS key for <registry>/<id>/cosign/** on every
// registry, AWS Signer with the run's profile and revocation Enforce
// for <registry>/<id>/signer/**.
func (b *bench) policies(ctx context.Context) error {
	cosign := &v1alpha1.ClusterImagePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: b.id + "-cosign"},
		Spec: v1alpha1.ClusterImagePolicySpec{
			Images: []v1alpha1.ImageGlob{{Glob: b.registry + "/" + b.id + "/cosign/**"},
				{Glob: b.referrersRegistry + "/" + b.id + "/cosign/**"}, {Glob: b.burstRegistryHost + "/" + b.id + "/cosign/**"}},
			Authorities: []v1alpha1.Authority{{Name: "ci-kms", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///" + b.alias}}},
		},
	}
	signer := &v1alpha1.ClusterImagePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: b.id + "-signer"},
		Spec: v1alpha1.ClusterImagePolicySpec{
			Images: []v1alpha1.ImageGlob{{Glob: b.registry + "/" + b.id + "/signer/**"}},
			Authorities: []v1alpha1.Authority{{Name: "aws-signer", Signer: &v1alpha1.SignerAuthority{
				Profiles: []string{b.signer.profileARN}, Revocation: v1alpha1.RevocationEnforce,
			}}},
		},
	}
	for _, p := range []*v1alpha1.ClusterImagePolicy{cosign, signer} {
		if err := b.c.Create(ctx, p); err != nil {
			return fmt.Errorf("creating policy %s: %w", p.Name, err)
		}
		b.later(func() { _ = b.c.Delete(context.Background(), p) })
	}
	for _, p := range []*v1alpha1.ClusterImagePolicy{cosign, signer} {
		if err := b.waitReady(ctx, p.Name); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) waitReady(ctx context.Context, policyName string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := &v1alpha1.ClusterImagePolicy{}
		if err := b.c.Get(ctx, client.ObjectKey{Name: policyName}, got); err != nil {
			return err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == v1alpha1.ConditionReady && c.ObservedGeneration == got.Generation {
				if c.Status == metav1.ConditionTrue {
					return nil
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("policy %s is not Ready: %s", policyName, c.Message)
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("policy %s: no Ready condition within 60s", policyName)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// repo is <registry>/<id>/<name>; the policies govern <registry>/<id>/cosign/**
// and <registry>/<id>/signer/**.
func (b *bench) repo(name string) name.Repository {
	return mustRepo(b.registry + "/" + b.id + "/" + name)
}

// fastRepo is <referrers registry>/<id>/<name>: go-containerregistry's
// in-memory registry takes writes much faster than CNCF distribution's
// filesystem storage.
func (b *bench) fastRepo(name string) name.Repository {
	return mustRepo(b.referrersRegistry + "/" + b.id + "/" + name)
}

// burstRepo is on the private counting registry.
func (b *bench) burstRepo() name.Repository {
	return mustRepo(b.burstRegistryHost + "/" + b.id + "/cosign/burst")
}

func mustRepo(s string) name.Repository {
	r, err := name.NewRepository(s, name.Insecure)
	if err != nil {
		panic(err)
	}
	return r
}

func (b *bench) createNamespace(ctx context.Context, ns string, labels map[string]string) error {
	_, err := b.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	b.later(func() { _ = b.cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	return nil
}

// later registers a cleanup; cleanup runs them in reverse order.
func (b *bench) later(f func()) { b.cleanups = append(b.cleanups, f) }

func (b *bench) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
	b.cleanups = nil
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.out, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// repoRoot walks up from the working directory to Signet's go.mod.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.HasPrefix(string(b), "module github.com/signet-dev/signet\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no Signet repository above %s", wd)
		}
	}
}

// installCRD applies the generated CRD server-side (idempotent, as
// test/stack's InstallCRD does for tests) and waits until it is served.
func installCRD(ctx context.Context, cfg *rest.Config) error {
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(signetconfig.CRD, crd); err != nil {
		return err
	}
	crd.APIVersion, crd.Kind = "apiextensions.k8s.io/v1", "CustomResourceDefinition"
	body, err := json.Marshal(crd)
	if err != nil {
		return err
	}
	if _, err := cs.ApiextensionsV1().CustomResourceDefinitions().Patch(ctx, crd.Name, types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: "signet-tests", Force: ptr(true)}); err != nil {
		return fmt.Errorf("installing the CRD: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err == nil {
			for _, c := range got.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					if _, err = cs.Discovery().ServerResourcesForGroupVersion(v1alpha1.GroupVersion.String()); err == nil {
						return nil
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return errors.Join(errors.New("the CRD was not established within 60s"), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
