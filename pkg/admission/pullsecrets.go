package admission

import (
	"context"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	kauth "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// pullSecretTimeout bounds reading a Pod's pull secrets.
const pullSecretTimeout = 3 * time.Second

// pullSecretKeychain returns the registry credentials a Pod would pull
// with: its imagePullSecrets and its service account's. They are read
// lazily, on the first registry read that needs them, so an admission
// answered from the verdict cache makes no API call. ECR needs none of
// this: Signet's own identity (IRSA, Pod Identity) reads ECR.
func pullSecretKeychain(reader client.Reader, namespace string, spec *corev1.PodSpec) authn.Keychain {
	if reader == nil || namespace == "" {
		return nil
	}
	names := map[string]bool{}
	for _, s := range spec.ImagePullSecrets {
		names[s.Name] = true
	}
	sa := spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	return &lazyKeychain{load: func(ctx context.Context) (authn.Keychain, error) {
		account := &corev1.ServiceAccount{}
		switch err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: sa}, account); {
		case err == nil:
			for _, s := range account.ImagePullSecrets {
				names[s.Name] = true
			}
		case !apierrors.IsNotFound(err):
			return nil, err
		}
		var secrets []corev1.Secret
		for name := range names {
			s := corev1.Secret{}
			if err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &s); err != nil {
				if apierrors.IsNotFound(err) {
					continue // the kubelet ignores a missing pull secret too
				}
				return nil, err
			}
			secrets = append(secrets, s)
		}
		return kauth.NewFromPullSecrets(ctx, secrets)
	}}
}

// lazyKeychain loads its keychain once, on first use.
type lazyKeychain struct {
	once sync.Once
	load func(context.Context) (authn.Keychain, error)
	kc   authn.Keychain
}

func (k *lazyKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

func (k *lazyKeychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	k.once.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, pullSecretTimeout)
		defer cancel()
		kc, err := k.load(ctx)
		if err != nil {
			// Fall back to Signet's own credentials; the registry then says
			// whether access is denied, which the denial reports.
			logf.FromContext(ctx).Info("could not read pull secrets", "error", err.Error())
			kc = authn.NewMultiKeychain()
		}
		k.kc = kc
	})
	return k.kc.Resolve(r)
}
