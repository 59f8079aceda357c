// Package store keeps the compiled ClusterImagePolicies the webhook judges
// with: a controller-runtime reconciler compiles each policy when it
// changes, reports the result in the policy's Ready condition, and
// publishes an immutable snapshot that admission handlers read without
// locks on the hot path.
package store

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// Reasons of the Ready condition.
const (
	ReasonCompiled              = "Compiled"
	ReasonInvalid               = "InvalidSpec"
	ReasonAuthorityUnavailable  = "AuthorityUnavailable"
	retryUnavailable            = 30 * time.Second
	resyncSecretsAndKeyRotation = 5 * time.Minute
)

// Snapshot is the set of policies in force. It is never modified after
// it is published; a change publishes a new one.
type Snapshot struct {
	Policies []*policy.Policy
}

// Store reconciles ClusterImagePolicies into Snapshots.
type Store struct {
	client     client.Client
	readSecret policy.SecretReader // uncached: Secrets are read only when a policy names one
	newVerify  policy.VerifierFactory
	cache      *policy.VerdictCache

	mu       sync.Mutex
	policies map[string]*policy.Policy

	current atomic.Pointer[Snapshot]
}

// New builds a Store. reader reads the Secrets policies name (an uncached
// client, so the webhook needs no cluster-wide watch on Secrets).
func New(c client.Client, reader client.Reader, newVerifier policy.VerifierFactory, cache *policy.VerdictCache) *Store {
	s := &Store{client: c, readSecret: SecretReader(reader), newVerify: newVerifier, cache: cache, policies: map[string]*policy.Policy{}}
	s.current.Store(&Snapshot{})
	return s
}

// Snapshot returns the policies in force now.
func (s *Store) Snapshot() *Snapshot { return s.current.Load() }

// SetupWithManager registers the reconciler. Only spec changes (a new
// generation), creations and deletions trigger it, not status writes:
// every replica compiles every policy and writes its Ready condition, and
// replicas whose messages differ (an AWS error carries its request ID)
// would otherwise wake each other in a loop, recompiling and calling AWS
// each time. The periodic resync still corrects a status someone changed.
func (s *Store) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ClusterImagePolicy{}, builder.WithPredicates(compileOn)).
		Named("clusterimagepolicy").
		Complete(s)
}

// compileOn lets through the events that change what a policy compiles to:
// creations, deletions and spec changes (a new generation), never status
// writes.
var compileOn predicate.Predicate = predicate.GenerationChangedPredicate{}

// RBAC (config/rbac/role.yaml is generated from these markers): policies
// are watched and their status patched; a Secret is read, uncached, only
// when a policy's key.secretRef names it. A cluster admin who keeps signing
// keys in known namespaces can replace the ClusterRole's secrets rule with a
// Role granting get on Secrets in each of them: see config/rbac/README.md.
//
// +kubebuilder:rbac:groups=signet.dev,resources=clusterimagepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=signet.dev,resources=clusterimagepolicies/status,verbs=update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// Reconcile compiles one policy, publishes it and reports its readiness.
func (s *Store) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	cip := &v1alpha1.ClusterImagePolicy{}
	if err := s.client.Get(ctx, req.NamespacedName, cip); err != nil {
		if apierrors.IsNotFound(err) {
			s.publish(req.Name, nil)
			log.Info("policy removed")
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	p, errs := policy.Compile(ctx, cip, s.newVerify, s.readSecret)
	s.publish(cip.Name, p)

	cond := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonCompiled,
		Message: readyMessage(p), ObservedGeneration: cip.Generation}
	result := ctrl.Result{RequeueAfter: resyncSecretsAndKeyRotation}
	switch {
	case len(errs) > 0:
		cond.Status, cond.Reason = metav1.ConditionFalse, ReasonInvalid
		cond.Message = "images this policy governs are denied until it is fixed: " + errs.ToAggregate().Error()
	case p.NotReady != nil:
		cond.Status, cond.Reason = metav1.ConditionFalse, ReasonAuthorityUnavailable
		cond.Message = "images this policy governs are denied until its authorities load: " + p.NotReady.Error()
		result.RequeueAfter = retryUnavailable
	}
	log.Info("policy compiled", "generation", cip.Generation, "ready", cond.Status, "reason", cond.Reason)
	return result, s.setReady(ctx, cip, cond)
}

// readyMessage says what a Ready policy enforces: an allow-list of static
// pass authorities says it checks no signature.
func readyMessage(p *policy.Policy) string {
	msg := fmt.Sprintf("enforcing %d image globs with %d authorities", len(p.Globs), len(p.Authorities))
	if p.Passes() {
		msg = fmt.Sprintf("admitting the images of %d image globs without a signature: every authority is static pass", len(p.Globs))
	}
	if p.BreakGlass {
		msg += "; break-glass allowed (signet.dev/break-glass annotation)"
	}
	return msg
}

func (s *Store) setReady(ctx context.Context, cip *v1alpha1.ClusterImagePolicy, cond metav1.Condition) error {
	if old := meta.FindStatusCondition(cip.Status.Conditions, cond.Type); old != nil &&
		old.Status == cond.Status && old.Reason == cond.Reason && old.Message == cond.Message &&
		old.ObservedGeneration == cond.ObservedGeneration && cip.Status.ObservedGeneration == cip.Generation {
		return nil // nothing changed: no write
	}
	patch := client.MergeFrom(cip.DeepCopy())
	meta.SetStatusCondition(&cip.Status.Conditions, cond)
	cip.Status.ObservedGeneration = cip.Generation
	return s.client.Status().Patch(ctx, cip, patch)
}

// publish replaces one policy (nil removes it) and swaps in a new
// snapshot. Cached verdicts of verifiers no policy uses any more are
// dropped, so a changed key or profile list takes effect at once.
func (s *Store) publish(name string, p *policy.Policy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.policies[name]
	if p == nil {
		delete(s.policies, name)
	} else {
		s.policies[name] = p
	}
	next := &Snapshot{}
	inUse := map[string]bool{}
	for _, q := range s.policies {
		next.Policies = append(next.Policies, q)
		for _, a := range q.Authorities {
			inUse[a.Verifier.Identity()] = true
		}
	}
	sort.Slice(next.Policies, func(i, j int) bool { return next.Policies[i].Name < next.Policies[j].Name })
	s.current.Store(next)
	if old != nil && s.cache != nil {
		for _, a := range old.Authorities {
			if id := a.Verifier.Identity(); !inUse[id] {
				s.cache.Forget(id)
			}
		}
	}
}

// SecretReader reads one key of one Secret for a secretRef authority
// through reader. The store compiles with it, and so does the
// ClusterImagePolicy webhook, so both reject a missing Secret or key alike.
func SecretReader(reader client.Reader) policy.SecretReader {
	return func(ctx context.Context, namespace, name, key string) ([]byte, error) {
		sec := &corev1.Secret{}
		if err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, sec); err != nil {
			return nil, err
		}
		v, ok := sec.Data[key]
		if !ok {
			return nil, fmt.Errorf("Secret %s/%s has no key %q", namespace, name, key) //nolint:staticcheck // "Secret" is the Kubernetes kind, written as kubectl writes it
		}
		return v, nil
	}
}

// Synced reports whether every policy the cache holds has been compiled at
// its current generation: the webhook is ready only then, so a fresh
// replica never admits on an empty policy set.
func (s *Store) Synced(ctx context.Context) error {
	var list v1alpha1.ClusterImagePolicyList
	if err := s.client.List(ctx, &list); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cip := range list.Items {
		p, ok := s.policies[cip.Name]
		if !ok || p.Generation != cip.Generation {
			return fmt.Errorf("ClusterImagePolicy %q is not compiled yet", cip.Name)
		}
	}
	return nil
}
