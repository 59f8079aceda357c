package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// uninstall deletes Signet's webhook configurations. The Helm chart runs it
// as a pre-delete hook: Helm would otherwise delete the configurations last,
// after the Deployment, leaving the API server calling a webhook that no
// longer exists (and, with failurePolicy Fail, refusing every Pod). The
// built-in certificate Secret is owned by the validating configuration, so
// the garbage collector removes it too.
func uninstall(args []string) error {
	fs := flag.NewFlagSet("webhook uninstall", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "Path to a kubeconfig. Empty: in-cluster configuration, else $KUBECONFIG.")
	validating := fs.String("validating-webhook-configuration", "signet-validating", "ValidatingWebhookConfiguration to delete.")
	mutating := fs.String("mutating-webhook-configuration", "signet-mutating", "MutatingWebhookConfiguration to delete; empty for none.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	api := cs.AdmissionregistrationV1()
	deletions := []struct {
		kind, name string
		del        func(context.Context, string, metav1.DeleteOptions) error
	}{
		{"ValidatingWebhookConfiguration", *validating, api.ValidatingWebhookConfigurations().Delete},
		{"MutatingWebhookConfiguration", *mutating, api.MutatingWebhookConfigurations().Delete},
	}
	for _, d := range deletions {
		if d.name == "" {
			continue
		}
		switch err := d.del(ctx, d.name, metav1.DeleteOptions{}); {
		case apierrors.IsNotFound(err):
			fmt.Printf("%s %s: already gone\n", d.kind, d.name)
		case err != nil:
			return fmt.Errorf("deleting %s %s: %w", d.kind, d.name, err)
		default:
			fmt.Printf("%s %s: deleted\n", d.kind, d.name)
		}
	}
	return nil
}
