// Package stack gives tests the local stack that `make stack-up` started: a
// real kube-apiserver and kube-controller-manager, two OCI registries and an
// AWS KMS test server, all on 127.0.0.1, and (unless SIGNET_STACK_NODE=false)
// a node where Pods run.
//
// Tests call Load and fail, never skip, when the stack is not running: `make
// test` always brings it up, so a missing stack is a broken run, not an
// optional extra. The one exception is `go test -short` (`make unit`), the
// fast subset that runs without a stack: there Load skips the test, saying so.
package stack

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/signet-dev/signet/config"
)

// Env is what .stack/env describes. Every field is set when Load returns.
type Env struct {
	// Dir is the stack's state folder (.stack at the repository root).
	Dir string
	// Kubeconfig is the admin kubeconfig of the local control plane.
	Kubeconfig string
	// Registry is host:port of the CNCF distribution registry (no referrers API).
	Registry string
	// ReferrersRegistry is host:port of the registry that serves the OCI 1.1 referrers API.
	ReferrersRegistry string
	// KMSEndpoint is the URL of the AWS KMS test server (AWS_ENDPOINT_URL_KMS).
	KMSEndpoint string
	// Region is the AWS region the stack's AWS test servers claim to be in.
	Region string
	// Node is the name of the stack's node (kubelet on this machine), empty
	// when the stack runs without one (SIGNET_STACK_NODE=false).
	Node string
	// Vars holds every variable of .stack/env, for tests that start processes.
	Vars map[string]string
}

var (
	loadOnce sync.Once
	loaded   *Env
	loadErr  error
)

// Load returns the running stack and exports its variables (AWS endpoint,
// region, dummy credentials) into the test process, so the AWS SDK's default
// chain finds them exactly as it would in a real deployment.
func Load(t testing.TB) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local stack: skipped by -short (make unit); make test runs it")
	}
	loadOnce.Do(func() { loaded, loadErr = load() })
	if loadErr != nil {
		t.Fatalf("local stack: %v\nStart it with `make stack-up` (or run everything with `make test`).", loadErr)
	}
	return loaded
}

// RESTConfig is the admin client configuration for the stack's API server.
func (e *Env) RESTConfig(t testing.TB) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
	if err != nil {
		t.Fatalf("local stack: reading %s: %v", e.Kubeconfig, err)
	}
	return cfg
}

func load() (*Env, error) {
	dir, err := stateDir()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "env")
	vars, err := readEnvFile(path)
	if err != nil {
		return nil, err
	}
	for k, v := range vars {
		if err := os.Setenv(k, v); err != nil {
			return nil, err
		}
	}
	e := &Env{
		Dir:               dir,
		Kubeconfig:        vars["KUBECONFIG"],
		Registry:          vars["SIGNET_REGISTRY"],
		ReferrersRegistry: vars["SIGNET_REFERRERS_REGISTRY"],
		KMSEndpoint:       vars["AWS_ENDPOINT_URL_KMS"],
		Region:            vars["AWS_REGION"],
		Node:              vars["SIGNET_NODE"],
		Vars:              vars,
	}
	for name, v := range map[string]string{
		"KUBECONFIG": e.Kubeconfig, "SIGNET_REGISTRY": e.Registry, "SIGNET_REFERRERS_REGISTRY": e.ReferrersRegistry,
		"AWS_ENDPOINT_URL_KMS": e.KMSEndpoint, "AWS_REGION": e.Region,
	} {
		if v == "" {
			return nil, fmt.Errorf("%s does not set %s", path, name)
		}
	}
	return e, nil
}

// stateDir finds .stack: $SIGNET_STACK_DIR, else the repository root found by
// walking up from the test's working directory to go.mod.
func stateDir() (string, error) {
	if d := os.Getenv("SIGNET_STACK_DIR"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.HasPrefix(string(b), "module github.com/signet-dev/signet\n") {
			return filepath.Join(d, ".stack"), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no repository root above %s", wd)
		}
	}
}

// readEnvFile parses the `export KEY=VALUE` lines that stack-up writes.
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("the stack is not running (%w)", err)
	}
	defer f.Close()
	vars := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s.Text()), "export "))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: malformed line %q", path, line)
		}
		vars[k] = strings.Trim(v, `'"`)
	}
	return vars, s.Err()
}

// InstallCRD applies the generated ClusterImagePolicy CRD (server-side, so
// it is idempotent across tests) and waits until it is Established and its
// group version is served (Established can precede discovery by a moment).
func (e *Env) InstallCRD(t testing.TB) {
	t.Helper()
	e.ApplyCRD(t, config.CRD, "signet.dev/v1alpha1")
}

// ApplyCRD applies one CRD manifest as InstallCRD does and waits until
// groupVersion is served.
func (e *Env) ApplyCRD(t testing.TB, manifest []byte, groupVersion string) {
	t.Helper()
	cfg := e.RESTConfig(t)
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(manifest, crd); err != nil {
		t.Fatal(err)
	}
	crd.APIVersion, crd.Kind = "apiextensions.k8s.io/v1", "CustomResourceDefinition"
	body, err := json.Marshal(crd)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	force := true
	if _, err := cs.ApiextensionsV1().CustomResourceDefinitions().Patch(ctx, crd.Name, types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: "signet-tests", Force: &force}); err != nil {
		t.Fatalf("installing the CRD: %v", err)
	}
	for {
		got, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err == nil {
			for _, c := range got.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					if _, err = cs.Discovery().ServerResourcesForGroupVersion(groupVersion); err == nil {
						return
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the CRD was not established within 60s (last error: %v)", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
