package awssigner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/notaryproject/notation-core-go/signature"
	"github.com/notaryproject/notation-go"
	notationverifier "github.com/notaryproject/notation-go/verifier"
	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	"github.com/notaryproject/notation-plugin-framework-go/plugin"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy"
)

// precedence orders what signatures failed on, most telling first: a
// signature by a trusted profile that is revoked, or could not be checked,
// says more than one that binds another image, has expired, comes from
// another signer or does not verify at all.
var precedence = []policy.Reason{
	policy.ReasonRevoked,
	policy.ReasonRevocationUnavailable,
	policy.ReasonDigestMismatch,
	policy.ReasonExpired,
	policy.ReasonUntrustedIdentity,
	policy.ReasonInvalidSignature,
}

// verdict words a verification that admitted nothing. The order:
//
//  1. the caller's deadline passed;
//  2. the registry could not be read, or exceeded a limit: a valid
//     signature may exist where Signet could not look;
//  3. nothing was found;
//  4. more signatures than Signet examines, none valid;
//  5. the most telling failure among the signatures examined.
func (v *Verifier) verdict(ctx context.Context, res policy.Result, s *session, err error) policy.Result {
	if ctx.Err() != nil {
		return withCause(res, policy.ReasonTimeout, "verification did not finish within the deadline")
	}
	if s.registryErr != nil {
		return registryVerdict(res, s)
	}
	if len(s.attempts) == 0 {
		if err != nil && !isNoSignature(err) {
			return withCause(res, policy.ReasonInvalidSignature, oci.Clip(err.Error()))
		}
		return withCause(res, policy.ReasonNoSignature, "no signature found")
	}
	if limit := v.registry.Limits().MaxSignatures; len(s.attempts) >= limit {
		return withCause(res, policy.ReasonLimitExceeded, fmt.Sprintf(
			"%d signatures examined (Signet's limit on signatures examined per image) and none verifies", limit))
	}
	type found struct {
		reason policy.Reason
		cause  string
		signer string
	}
	var all []found
	for _, a := range s.attempts {
		r, c := a.verdict(s.resolved)
		all = append(all, found{r, c, a.profileVersion})
	}
	for _, reason := range precedence {
		for _, f := range all {
			if f.reason != reason {
				continue
			}
			res.Signer = f.signer
			if len(all) == 1 {
				return withCause(res, reason, f.cause)
			}
			return withCause(res, reason, fmt.Sprintf("%d signatures found, none valid: %s", len(all), f.cause))
		}
	}
	return withCause(res, policy.ReasonInvalidSignature, oci.Clip(errString(err)))
}

// isNoSignature: notation-go found no signature manifest for the digest.
func isNoSignature(err error) bool {
	var e notation.SignatureRetrievalFailedError
	return errors.As(err, &e) && strings.HasPrefix(e.Msg, "no signature is associated with")
}

// verdict says what one signature failed on. The plugin's findings come
// first: notation-go calls the plugin after its own checks passed.
func (a *attempt) verdict(image ocispec.Descriptor) (policy.Reason, string) {
	switch {
	case len(a.unknownCritical) > 0:
		return policy.ReasonInvalidSignature, fmt.Sprintf("signature carries unknown critical attribute %q", a.unknownCritical[0])
	case a.untrusted:
		return policy.ReasonUntrustedIdentity, fmt.Sprintf("signed by signing profile version %s, which no trusted profile matches", a.profileVersion)
	case len(a.revoked) > 0:
		return policy.ReasonRevoked, a.revokedCause()
	case a.revocationErr != nil:
		return policy.ReasonRevocationUnavailable, oci.Clip(a.revocationErr.Error())
	case a.pluginErr != nil:
		return policy.ReasonInvalidSignature, "not a valid AWS Signer signature: " + oci.Clip(pluginMessage(a.pluginErr))
	case a.outcome == nil:
		return policy.ReasonInvalidSignature, oci.Clip(errString(a.err))
	}
	o := a.outcome
	for _, r := range o.VerificationResults {
		if r.Error == nil || r.Action != trustpolicy.ActionEnforce {
			continue
		}
		switch r.Type {
		case trustpolicy.TypeIntegrity:
			return policy.ReasonInvalidSignature, integrityCause(r.Error)
		case trustpolicy.TypeAuthenticity:
			if cause, ok := notSignerCause(o); ok {
				return policy.ReasonUntrustedIdentity, cause
			}
			chain := o.EnvelopeContent.SignerInfo.CertificateChain
			return policy.ReasonUntrustedIdentity, fmt.Sprintf("certificate chain ends at %q, which is not a trusted AWS Signer root", chain[len(chain)-1].Subject.String())
		case trustpolicy.TypeExpiry:
			return policy.ReasonExpired, "signature expired at " + utc(o.EnvelopeContent.SignerInfo.SignedAttributes.Expiry)
		case trustpolicy.TypeAuthenticTimestamp:
			return policy.ReasonExpired, signingTimeCause(o.EnvelopeContent.SignerInfo, r.Error)
		case trustpolicy.TypeRevocation:
			return policy.ReasonRevocationUnavailable, "could not check revocation: " + oci.Clip(r.Error.Error())
		}
	}
	if o.EnvelopeContent != nil {
		var p struct {
			TargetArtifact ocispec.Descriptor `json:"targetArtifact"`
		}
		if json.Unmarshal(o.EnvelopeContent.Payload.Content, &p) == nil && (p.TargetArtifact.Digest != image.Digest ||
			p.TargetArtifact.Size != image.Size || p.TargetArtifact.MediaType != image.MediaType) {
			return policy.ReasonDigestMismatch, targetCause(p.TargetArtifact, image)
		}
	}
	return policy.ReasonInvalidSignature, oci.Clip(errString(a.err))
}

func (a *attempt) revokedCause() string {
	var parts []string
	var chain []string
	if a.outcome != nil && a.outcome.EnvelopeContent != nil {
		certs := a.outcome.EnvelopeContent.SignerInfo.CertificateChain
		for _, c := range certs {
			chain = append(chain, c.Subject.String())
		}
		hashes := certificateHashes(certs)
		for _, e := range a.revoked {
			for i, h := range hashes {
				if e == h {
					e = fmt.Sprintf("certificate %q", chain[i])
				}
			}
			parts = append(parts, a.revokedEntity(e))
		}
	} else {
		for _, e := range a.revoked {
			parts = append(parts, a.revokedEntity(e))
		}
	}
	return "revoked in AWS Signer: " + strings.Join(parts, ", ")
}

func (a *attempt) revokedEntity(e string) string {
	switch e {
	case a.job:
		return "signing job " + e
	case a.profileVersion:
		return "signing profile version " + e
	}
	return e
}

// notSignerCause recognises a signature AWS Signer did not make: Notation
// signatures made with other keys (notation sign --key, the notation.x509
// scheme) and signatures that do not name AWS Signer's plugin.
func notSignerCause(o *notation.VerificationOutcome) (string, bool) {
	if o.EnvelopeContent == nil {
		return "", false
	}
	info := o.EnvelopeContent.SignerInfo
	plugin := "none"
	if attr, err := info.ExtendedAttribute(notationverifier.HeaderVerificationPlugin); err == nil {
		if s, ok := attr.Value.(string); ok {
			plugin = s
		}
	}
	if info.SignedAttributes.SigningScheme == signature.SigningSchemeX509SigningAuthority && plugin == PluginName {
		return "", false
	}
	return fmt.Sprintf("signature was not made by AWS Signer (signing scheme %s, verification plugin %s)", info.SignedAttributes.SigningScheme, plugin), true
}

func integrityCause(err error) string {
	var ie *signature.SignatureIntegrityError
	if errors.As(err, &ie) {
		return "signature does not match its payload (tampered or corrupt)"
	}
	return "signature envelope is invalid: " + oci.Clip(err.Error())
}

// signingTimeCause names the certificate that was not valid when the
// signature was made.
func signingTimeCause(info signature.SignerInfo, err error) string {
	t := info.SignedAttributes.SigningTime
	for _, c := range info.CertificateChain {
		if t.Before(c.NotBefore) || t.After(c.NotAfter) {
			return fmt.Sprintf("certificate %q was not valid at the signing time %s (valid %s to %s)", c.Subject.String(), utc(t), utc(c.NotBefore), utc(c.NotAfter))
		}
	}
	return oci.Clip(err.Error())
}

func targetCause(signed, image ocispec.Descriptor) string {
	if signed.Digest != image.Digest {
		return "signature was made for " + signed.Digest.String()
	}
	return fmt.Sprintf("signature was made for %s as %d bytes of %s, but the registry serves %d bytes of %s",
		signed.Digest, signed.Size, signed.MediaType, image.Size, image.MediaType)
}

// registryVerdict words a registry failure.
func registryVerdict(res policy.Result, s *session) policy.Result {
	err, what := s.registryErr, s.registryWhat
	switch oci.ClassifyORAS(err) {
	case oci.FailureLimit:
		var le *oci.LimitError
		errors.As(err, &le)
		return withCause(res, policy.ReasonLimitExceeded, "reading "+what+": "+le.Error())
	case oci.FailureNotFound:
		if what == "the image manifest" {
			return withCause(res, policy.ReasonNoSignature, "image not found: the registry has no manifest "+digestOf(res.Image))
		}
	}
	res.RegistryDenied = oci.ClassifyORAS(err) == oci.FailureDenied
	repository, _, _ := strings.Cut(res.Image, "@")
	return withCause(res, policy.ReasonRegistryUnavailable, oci.Describe(err, registryHost(res.Image), repository, what))
}

func registryHost(image string) string {
	host, _, _ := strings.Cut(image, "/")
	return host
}

func digestOf(image string) string {
	_, d, _ := strings.Cut(image, "@")
	return d
}

// pluginMessage is a plugin error's own message, without notation's wrapping.
func pluginMessage(err error) string {
	var pe *plugin.Error
	if errors.As(err, &pe) {
		return pe.Message
	}
	return err.Error()
}

func errString(err error) string {
	if err == nil {
		return "signature did not verify"
	}
	return err.Error()
}

func withCause(res policy.Result, reason policy.Reason, cause string) policy.Result {
	res.Reason = reason
	res.Cause = cause
	return res
}

func utc(t time.Time) string { return t.UTC().Format(time.RFC3339) }
