// Package verify builds the signature verifiers of every scheme from a
// ClusterImagePolicy authority, over the process-wide pieces they share:
// one registry client, one KMS key cache, one AWS Signer revocation cache.
// The webhook and the CLI both build their Engine from it, so a pipeline
// and the cluster verify with identical code and configuration.
package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/signet-dev/signet/internal/awsclient"
	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/pkg/policy/verify/awssigner"
	"github.com/signet-dev/signet/pkg/policy/verify/cosign"
)

// Config is what the process configures; AWS itself comes from the SDK's
// default chain (IRSA, EKS Pod Identity, environment, AWS_ENDPOINT_URL_*).
type Config struct {
	// AWSSignerRoots is a PEM file replacing the embedded AWS Signer roots.
	AWSSignerRoots string
	// InsecureRegistries may be reached over plain HTTP (loopback always may).
	InsecureRegistries []string
	// KeyRefresh is how often KMS public keys are read again (default 10 min).
	KeyRefresh time.Duration
	// LazyKeys reads each KMS key when a signature is first checked with
	// it, not when a policy names it (see cosign.KMSKeysOptions.Lazy).
	LazyKeys bool
	// RevocationTTL keeps AWS Signer revocation answers (default 10 min).
	RevocationTTL time.Duration
	UserAgent     string
	// RegistryMaxConnsPerHost bounds connections to one registry host
	// (0: oci.DefaultMaxConnsPerHost).
	RegistryMaxConnsPerHost int
	// ObserveRegistry and ObserveAWS, when set, are told about every
	// registry request and every AWS call (the webhook's metrics).
	ObserveRegistry func(host string, status int, err error, took time.Duration)
	ObserveAWS      func(awsclient.Call)
}

// SignerAttestationsRefused is why a signer authority listing attestations
// is invalid: the CRD's rule on signer.attestations says the same words.
const SignerAttestationsRefused = "a signer authority cannot require attestations: Signet checks in-toto attestations made with cosign attest and a cosign key; list them under key.attestations of a key authority that trusts the key your pipeline attests with"

// Verifiers holds the shared pieces and builds verifiers from authorities.
type Verifiers struct {
	Registry    *oci.Client
	KMSKeys     *cosign.KMSKeys
	Revocations *awssigner.RevocationChecker
	Roots       *awssigner.Roots
}

// New loads the AWS configuration and builds the shared pieces. It makes
// no AWS call: keys are read when a policy names them.
func New(ctx context.Context, cfg Config) (*Verifiers, error) {
	awsCfg, err := awsclient.LoadConfig(ctx, awsclient.WithObserver(cfg.ObserveAWS))
	if err != nil {
		return nil, err
	}
	roots := awssigner.DefaultRoots()
	if cfg.AWSSignerRoots != "" {
		if roots, err = awssigner.LoadRoots(cfg.AWSSignerRoots); err != nil {
			return nil, err
		}
	}
	registry := oci.New(oci.Options{
		Keychain:           awsclient.DefaultKeychain(awsclient.NewECRKeychain(awsCfg, awsclient.ECRKeychainOptions{})),
		InsecureRegistries: cfg.InsecureRegistries,
		UserAgent:          cfg.UserAgent,
		Observe:            cfg.ObserveRegistry,
		MaxConnsPerHost:    cfg.RegistryMaxConnsPerHost,
	})
	signers := awsclient.NewSignerClients(awsCfg)
	revocations, err := awssigner.NewRevocationChecker(awssigner.RevocationOptions{Clients: signers.ForRegion, TTL: cfg.RevocationTTL})
	if err != nil {
		return nil, err
	}
	return &Verifiers{
		Registry:    registry,
		KMSKeys:     cosign.NewKMSKeys(awsclient.NewKMSClients(awsCfg), cosign.KMSKeysOptions{RefreshInterval: cfg.KeyRefresh, Lazy: cfg.LazyKeys}),
		Revocations: revocations,
		Roots:       roots,
	}, nil
}

// Start refreshes KMS keys in the background until ctx ends (the webhook
// runs it; a one-shot CLI need not).
func (v *Verifiers) Start(ctx context.Context) error { return v.KMSKeys.Start(ctx) }

// Factory is the policy.VerifierFactory over these pieces.
func (v *Verifiers) Factory() policy.VerifierFactory { return v.New }

// New builds the verifier for one authority. A PEM key that does not parse
// is the policy's fault (a field error); a KMS key that cannot be read is
// unavailability (the policy is not Ready, with KMS's answer).
func (v *Verifiers) New(ctx context.Context, a v1alpha1.Authority, secretData []byte) (policy.Verifier, error) {
	switch {
	case a.Signer != nil && len(a.Signer.Attestations) > 0:
		// The CRD refuses this; a policy that reached Signet without the
		// CRD's validation must not be enforced without its attestations.
		return nil, &policy.InvalidAuthorityError{Field: "signer.attestations", Value: field.OmitValueType{}, Msg: SignerAttestationsRefused}
	case a.Signer != nil:
		sv, err := awssigner.New(awssigner.Options{
			Profiles:    a.Signer.Profiles,
			Revocation:  awssigner.RevocationMode(a.Signer.Revocation),
			Roots:       v.Roots,
			Registry:    v.Registry,
			Revocations: v.Revocations,
		})
		if err != nil {
			return nil, &policy.InvalidAuthorityError{Field: "signer.profiles", Value: a.Signer.Profiles, Msg: err.Error()}
		}
		return sv, nil
	case a.Key == nil:
		return nil, &policy.InvalidAuthorityError{Field: "key", Msg: "set key or signer"}
	case a.Key.KMS != "":
		cv, err := cosign.NewKMS(ctx, v.KMSKeys, a.Key.KMS, v.cosignOptions(a.Key))
		if ae, ok := asAttestationError(err); ok {
			return nil, ae
		}
		return cv, err
	case a.Key.Data != "":
		cv, err := cosign.NewPEM("", []byte(a.Key.Data), v.cosignOptions(a.Key))
		if ae, ok := asAttestationError(err); ok {
			return nil, ae
		}
		if err != nil {
			return nil, &policy.InvalidAuthorityError{Field: "key.data", Value: "(PEM)", Msg: err.Error()}
		}
		return cv, nil
	case a.Key.SecretRef != nil:
		ref := a.Key.SecretRef
		where := fmt.Sprintf("secret %s/%s key %s", ref.Namespace, ref.Name, ref.Key)
		cv, err := cosign.NewPEM(where, secretData, v.cosignOptions(a.Key))
		if ae, ok := asAttestationError(err); ok {
			return nil, ae
		}
		if err != nil {
			return nil, &policy.InvalidAuthorityError{Field: "key.secretRef", Value: where, Msg: err.Error()}
		}
		return cv, nil
	}
	return nil, errors.New("authority has no key source")
}

// cosignOptions are the cosign verifier's options for one key authority.
func (v *Verifiers) cosignOptions(k *v1alpha1.KeyAuthority) cosign.Options {
	o := cosign.Options{Registry: v.Registry}
	for _, a := range k.Attestations {
		att := cosign.Attestation{Name: a.Name, PredicateType: a.PredicateType, Condition: a.Condition}
		if a.MaxAge != nil {
			att.MaxAge = a.MaxAge.Duration
		}
		o.Attestations = append(o.Attestations, att)
	}
	return o
}

// asAttestationError turns a requirement that does not compile into the
// policy's field error: spec.authorities[i].key.attestations[j].condition.
func asAttestationError(err error) (*policy.InvalidAuthorityError, bool) {
	var ae *cosign.AttestationError
	if !errors.As(err, &ae) {
		return nil, false
	}
	return &policy.InvalidAuthorityError{Field: fmt.Sprintf("key.attestations[%d].%s", ae.Index, ae.Field), Value: ae.Value, Msg: ae.Msg}, true
}
