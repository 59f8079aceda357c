package awssigner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/notaryproject/notation-core-go/revocation"
	revocationresult "github.com/notaryproject/notation-core-go/revocation/result"
	"github.com/notaryproject/notation-go"
	notationverifier "github.com/notaryproject/notation-go/verifier"
	"github.com/notaryproject/notation-go/verifier/trustpolicy"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy"
)

// Options configure a Verifier.
type Options struct {
	// Profiles are the trusted signing-profile ARNs (any version of the
	// profile) and profile-version ARNs (exactly that version). Required.
	Profiles []string
	// Revocation is the revocation mode; "" means RevocationEnforce.
	Revocation RevocationMode
	// Roots are the trust anchors; nil means DefaultRoots().
	Roots *Roots
	// Registry is the shared registry layer; every read goes through it.
	Registry *oci.Client
	// Revocations is the process's revocation checker. Required unless
	// Revocation is RevocationSkip.
	Revocations *RevocationChecker
}

// Verifier is the policy.Verifier for one AWS Signer authority. It is built
// once per policy generation and shared by every request.
type Verifier struct {
	profiles    []profileARN
	mode        RevocationMode
	roots       *Roots
	registry    *oci.Client
	revocations *RevocationChecker
	notation    notation.Verifier
	describe    string
	identity    string
}

var _ policy.Verifier = (*Verifier)(nil)

// policyName names Signet's one trust policy statement in notation-go's messages.
const policyName = "signet-aws-signer"

// New builds the verifier: notation-go's verifier over an in-memory trust
// policy and trust store, with the in-process AWS Signer plugin.
func New(opts Options) (*Verifier, error) {
	if opts.Registry == nil {
		return nil, errors.New("awssigner: Options.Registry is required")
	}
	switch opts.Revocation {
	case "":
		opts.Revocation = RevocationEnforce
	case RevocationEnforce, RevocationBestEffort, RevocationSkip:
	default:
		return nil, fmt.Errorf("awssigner: revocation mode %q is not one of Enforce, BestEffort, Skip", opts.Revocation)
	}
	if opts.Revocation != RevocationSkip && opts.Revocations == nil {
		return nil, fmt.Errorf("awssigner: revocation mode %s needs Options.Revocations", opts.Revocation)
	}
	if opts.Roots == nil {
		opts.Roots = DefaultRoots()
	}
	if len(opts.Profiles) == 0 {
		return nil, errors.New("awssigner: no signing profiles to trust")
	}

	v := &Verifier{mode: opts.Revocation, roots: opts.Roots, registry: opts.Registry, revocations: opts.Revocations}
	var stores, keys []string
	for _, s := range opts.Profiles {
		p, err := parseProfileARN(s)
		if err != nil {
			return nil, fmt.Errorf("awssigner: %w", err)
		}
		store, err := p.trustStore()
		if err != nil {
			return nil, fmt.Errorf("awssigner: %w", err)
		}
		if len(opts.Roots.Certificates(store)) == 0 {
			return nil, fmt.Errorf("awssigner: %q needs an AWS Signer root for trust store %s, and the configured roots have none", s, store)
		}
		v.profiles = append(v.profiles, p)
		if !slices.Contains(stores, store) {
			stores = append(stores, store)
		}
		keys = append(keys, p.key())
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)

	doc := trustPolicy(opts.Profiles, stores, opts.Revocation)
	plugin := &signerPlugin{mode: opts.Revocation, revocations: opts.Revocations}
	nv, err := notationverifier.NewWithOptions(doc, opts.Roots, pluginManager{plugin: plugin}, notationverifier.VerifierOptions{
		RevocationCodeSigningValidator:  noRevocationEndpoints{},
		RevocationTimestampingValidator: noRevocationEndpoints{},
	})
	if err != nil {
		return nil, fmt.Errorf("awssigner: building the notation verifier: %w", err)
	}
	v.notation = nv

	noun := "signer profile "
	if len(opts.Profiles) > 1 {
		noun = "signer profiles "
	}
	v.describe = noun + strings.Join(opts.Profiles, ", ")
	v.identity = fmt.Sprintf("awssigner;profiles=%s;revocation=%s;roots=%s", strings.Join(keys, ","), opts.Revocation, opts.Roots.Fingerprint())
	return v, nil
}

// trustPolicy is the one statement Signet gives notation-go: strict
// verification of every image (registry scope "*"; image selection is the
// ClusterImagePolicy's job), against the AWS Signer roots of the trusted
// profiles' partitions. The trusted identities are the profile ARNs: not
// x509.subject identities, so notation-go does not match them itself but
// forwards them to the plugin that declares the trusted-identity
// capability, which is how AWS Signer's plugin receives them too. Skip
// turns notation-go's revocation step off, so the plugin is not asked.
func trustPolicy(profiles, stores []string, mode RevocationMode) *trustpolicy.Document {
	sv := trustpolicy.SignatureVerification{VerificationLevel: trustpolicy.LevelStrict.Name}
	if mode == RevocationSkip {
		sv.Override = map[trustpolicy.ValidationType]trustpolicy.ValidationAction{trustpolicy.TypeRevocation: trustpolicy.ActionSkip}
	}
	var trustStores []string
	for _, s := range stores {
		trustStores = append(trustStores, "signingAuthority:"+s)
	}
	return &trustpolicy.Document{
		Version: "1.0",
		TrustPolicies: []trustpolicy.TrustPolicy{{
			Name:                  policyName,
			RegistryScopes:        []string{"*"},
			SignatureVerification: sv,
			TrustStores:           trustStores,
			TrustedIdentities:     append([]string(nil), profiles...),
		}},
	}
}

// noRevocationEndpoints stands in for notation-go's OCSP/CRL checkers:
// AWS Signer signatures are checked by the plugin, and admission must not
// fetch CRLs from URLs a certificate names.
type noRevocationEndpoints struct{}

func (noRevocationEndpoints) ValidateContext(context.Context, revocation.ValidateContextOptions) ([]*revocationresult.CertRevocationResult, error) {
	return nil, errors.New("signet checks revocation through AWS Signer only")
}

// Identity names the trusted profiles, the revocation mode and the roots.
func (v *Verifier) Identity() string { return v.identity }

// Describe is "signer profile ARN" (or "signer profiles ARN, ARN").
func (v *Verifier) Describe() string { return v.describe }

// Verify finds the image's Notation signatures and admits it if one was
// made by a trusted signing profile, for this digest, and is not revoked.
// At most Limits.MaxSignatures signatures are examined.
func (v *Verifier) Verify(ctx context.Context, img policy.Image) policy.Result {
	res := policy.Result{Image: img.Ref.String(), Authority: v.describe}
	s := &session{}
	remote := v.registry.OrasRepository(img.Ref.Context(), img.Keychain)
	repo := newRepository(remote, v.registry.Limits(), s)
	ref := img.Ref.Context().Name() + "@" + img.Ref.DigestStr()

	_, outcomes, err := notation.Verify(withSession(ctx, s), recordingVerifier{v.notation}, repo, notation.VerifyOptions{
		ArtifactReference:    ref,
		MaxSignatureAttempts: v.registry.Limits().MaxSignatures,
	})
	if err == nil && len(outcomes) == 1 {
		for _, a := range s.attempts {
			if a.outcome == outcomes[0] {
				return v.verified(res, a)
			}
		}
	}
	return v.verdict(ctx, res, s, err)
}

func (v *Verifier) verified(res policy.Result, a *attempt) policy.Result {
	res.Reason = policy.ReasonVerified
	res.Signer = a.profileVersion
	res.ValidUntil = a.validUntil
	if a.warning != "" {
		res.Warnings = append(res.Warnings, a.warning)
		if v.revocations != nil {
			v.revocations.bestEffortAdmitted.Add(1)
		}
	}
	return res
}
