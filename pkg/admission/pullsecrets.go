package admission

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	kauth "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/signet-dev/signet/internal/expiring"
)

// pullSecretTimeout bounds reading a Pod's pull secrets.
const pullSecretTimeout = 3 * time.Second

// pullSecretTTL is how long the pull secrets read for one namespace,
// service account and imagePullSecrets serve later admissions with the
// same three. A rollout's Pods, or many images verified at once in one
// namespace, then read the API server once instead of once per
// verification (through a rate-limited client, where a queue of reads
// would hold admissions for seconds). Credentials changed within the TTL
// are used when it ends; verdicts themselves are cached for longer.
const pullSecretTTL = 10 * time.Second

// maxKeychains bounds the shared keychains; past it, expired ones go first.
const maxKeychains = 1024

// pullSecretKeychain returns the registry credentials a Pod would pull
// with: its imagePullSecrets and its service account's. They are read
// lazily, on the first registry read that needs them, so an admission
// answered from the verdict cache makes no API call, and shared through
// keychains for pullSecretTTL. ECR needs none of this: Signet's own
// identity (IRSA, Pod Identity) reads ECR.
//
// The second result fingerprints the credentials without reading them:
// a hash of the namespace, service account and pull-secret names, which
// name every secret the keychain may hold. The verdict cache shares
// results other than Verified only within one fingerprint. Empty with no
// keychain (Signet's own credentials).
func pullSecretKeychain(keychains *keychains, reader client.Reader, namespace string, spec *corev1.PodSpec) (authn.Keychain, string) {
	if reader == nil || namespace == "" {
		return nil, ""
	}
	var secretNames []string
	for _, s := range spec.ImagePullSecrets {
		secretNames = append(secretNames, s.Name)
	}
	slices.Sort(secretNames)
	secretNames = slices.Compact(secretNames)
	sa := spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	key := namespace + "\x00" + sa + "\x00" + strings.Join(secretNames, ",")
	sum := sha256.Sum256([]byte(key))
	return keychains.get(key, func(ctx context.Context) (authn.Keychain, error) {
		names := map[string]bool{}
		for _, n := range secretNames {
			names[n] = true
		}
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
	}), hex.EncodeToString(sum[:16])
}

// keychains shares pull-secret keychains between admissions that would
// read the same objects. The zero value is ready to use.
type keychains struct {
	once sync.Once
	m    *expiring.Map[string, *lazyKeychain]
	now  func() time.Time // tests replace it before first use
}

// get returns the keychain for key: a live one already made (loaded, or
// loading for another admission, which this one then waits for), or a
// new one that load fills on first use. A keychain whose load failed is
// not shared again.
func (c *keychains) get(key string, load func(context.Context) (authn.Keychain, error)) *lazyKeychain {
	c.once.Do(func() { c.m = expiring.New[string, *lazyKeychain](pullSecretTTL, maxKeychains, c.now) })
	return c.m.Update(key, func(cur *lazyKeychain, live bool) (*lazyKeychain, bool) {
		if live && !cur.failed.Load() {
			return cur, false
		}
		return &lazyKeychain{load: load}, true
	})
}

// lazyKeychain loads its keychain once, on first use.
type lazyKeychain struct {
	once   sync.Once
	load   func(context.Context) (authn.Keychain, error)
	kc     authn.Keychain
	failed atomic.Bool
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
			k.failed.Store(true)
		}
		k.kc = kc
	})
	return k.kc.Resolve(r)
}
