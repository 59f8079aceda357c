package admission

import (
	"context"
	"net/url"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// pinningReadTimeout bounds the cached read of the mutating configuration.
const pinningReadTimeout = time.Second

// PinningInstalled answers Judge.Pinning from what is actually installed:
// the MutatingWebhookConfiguration named name exists and one of its webhooks
// calls the kind's pinning path. Removing the configuration (or the kind's
// webhook) therefore turns the validators' "not pinned" denials into
// warnings instead of denying every tag. r should be the manager's cached
// client. When the configuration cannot be read for another reason the
// answer is "installed": the validator then refuses an unpinned tag (with a
// message that says to retry) rather than admit what the kubelet may pull
// differently.
func PinningInstalled(r client.Reader, name string) func(Kind) bool {
	return func(k Kind) bool {
		ctx, cancel := context.WithTimeout(context.Background(), pinningReadTimeout)
		defer cancel()
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		if err := r.Get(ctx, types.NamespacedName{Name: name}, &mwc); err != nil {
			if apierrors.IsNotFound(err) {
				return false
			}
			logf.Log.Info("could not read the digest-pinning configuration; treating pinning as installed", "configuration", name, "error", err.Error())
			return true
		}
		for _, w := range mwc.Webhooks {
			if clientPath(w.ClientConfig) == k.PinPath() {
				return true
			}
		}
		return false
	}
}

// clientPath is the HTTP path a webhook's client configuration calls.
func clientPath(c admissionregistrationv1.WebhookClientConfig) string {
	switch {
	case c.Service != nil && c.Service.Path != nil:
		return *c.Service.Path
	case c.URL != nil:
		if u, err := url.Parse(*c.URL); err == nil {
			return u.Path
		}
	}
	return ""
}
