package awssigner

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/notaryproject/notation-core-go/signature"
	notationplugin "github.com/notaryproject/notation-go/plugin"
	"github.com/notaryproject/notation-plugin-framework-go/plugin"
)

// PluginName is the verification plugin AWS Signer signatures name.
const PluginName = "com.amazonaws.signer.notation.plugin"

// pluginVersion is what the in-process plugin reports to notation-go. A
// signature asking for a newer plugin (io.cncf.notary.verificationPluginMinVersion)
// fails closed: it may rely on semantics Signet does not implement.
const pluginVersion = "1.0.0"

// AWS Signer's extended signed attributes.
const (
	attrProfileVersion = "com.amazonaws.signer.signingProfileVersion"
	attrJob            = "com.amazonaws.signer.signingJob"
	// attrProfileAlias is set on signatures of aliased signing profiles;
	// AWS's plugin marks it processed, and so does Signet.
	attrProfileAlias = "com.amazonaws.signer.signingProfileAlias"
)

// pluginManager is a notation-go plugin.Manager that knows exactly one
// plugin, in process: no plugin directory, no executable.
type pluginManager struct {
	plugin *signerPlugin
}

var _ notationplugin.Manager = pluginManager{}

func (m pluginManager) Get(_ context.Context, name string) (plugin.Plugin, error) {
	if name != PluginName {
		return nil, fmt.Errorf("plugin %q: %w", name, os.ErrNotExist)
	}
	return m.plugin, nil
}

func (m pluginManager) List(context.Context) ([]string, error) { return []string{PluginName}, nil }

// signerPlugin is the verification half of AWS Signer's Notation plugin:
// trusted identity (signing-profile ARNs) and revocation (AWS Signer's
// GetRevocationStatus). notation-go calls it after checking integrity, the
// chain to AWS Signer's root, expiry and the chain's validity at signing
// time. It records what it finds in the verification's attempt.
type signerPlugin struct {
	mode        RevocationMode
	revocations *RevocationChecker // nil when mode is Skip
}

var _ plugin.Plugin = (*signerPlugin)(nil)

func (p *signerPlugin) GetMetadata(context.Context, *plugin.GetMetadataRequest) (*plugin.GetMetadataResponse, error) {
	return &plugin.GetMetadataResponse{
		Name:                      PluginName,
		Description:               "AWS Signer signature verification, in process in Signet",
		Version:                   pluginVersion,
		URL:                       "https://docs.aws.amazon.com/signer",
		SupportedContractVersions: []string{plugin.ContractVersion},
		// Trusted identity first: notation-go acts on the results in this
		// order, and an untrusted signature needs no revocation answer.
		Capabilities: []plugin.Capability{plugin.CapabilityTrustedIdentityVerifier, plugin.CapabilityRevocationCheckVerifier},
	}, nil
}

func (p *signerPlugin) VerifySignature(ctx context.Context, req *plugin.VerifySignatureRequest) (*plugin.VerifySignatureResponse, error) {
	a := attemptFrom(ctx)
	resp, err := p.verify(ctx, a, req)
	if err != nil {
		a.pluginErr = err
	}
	return resp, err
}

func (p *signerPlugin) verify(ctx context.Context, a *attempt, req *plugin.VerifySignatureRequest) (*plugin.VerifySignatureResponse, error) {
	if req.ContractVersion != plugin.ContractVersion {
		return nil, plugin.NewUnsupportedContractVersionError(req.ContractVersion)
	}
	crit := req.Signature.CriticalAttributes
	if crit.SigningScheme != string(signature.SigningSchemeX509SigningAuthority) {
		return nil, plugin.NewValidationErrorf("signing scheme %q is not AWS Signer's (%s)", crit.SigningScheme, signature.SigningSchemeX509SigningAuthority)
	}
	if crit.AuthenticSigningTime == nil || crit.AuthenticSigningTime.IsZero() {
		return nil, plugin.NewValidationError("missing authentic signing time")
	}
	pv, err := stringAttribute(crit.ExtendedAttributes, attrProfileVersion)
	if err != nil {
		return nil, err
	}
	job, err := stringAttribute(crit.ExtendedAttributes, attrJob)
	if err != nil {
		return nil, err
	}
	a.profileVersion, a.job = pv, job

	resp := &plugin.VerifySignatureResponse{VerificationResults: map[plugin.Capability]*plugin.VerificationResult{}}
	for _, k := range slices.Sorted(maps.Keys(crit.ExtendedAttributes)) {
		switch {
		case k == attrProfileVersion || k == attrJob || k == attrProfileAlias:
			resp.ProcessedAttributes = append(resp.ProcessedAttributes, k)
		case a.critical != nil && !a.critical[k]:
			// Not critical: a verifier may ignore it.
			resp.ProcessedAttributes = append(resp.ProcessedAttributes, k)
		default:
			// Left unprocessed: notation-go fails the signature.
			a.unknownCritical = append(a.unknownCritical, k)
		}
	}

	signed, perr := parseProfileARN(pv)
	trusted := false
	if perr == nil && signed.version != "" {
		for _, id := range req.TrustPolicy.TrustedIdentities {
			if trustedARN, err := parseProfileARN(id); err == nil && trustedARN.matches(pv) {
				trusted = true
				break
			}
		}
	}
	for _, c := range req.TrustPolicy.SignatureVerification {
		switch c {
		case plugin.CapabilityTrustedIdentityVerifier:
			r := &plugin.VerificationResult{Success: trusted, Reason: "signing profile version " + pv + " is trusted"}
			if !trusted {
				a.untrusted = true
				r.Reason = "signing profile version " + pv + " matches no trusted identity"
			}
			resp.VerificationResults[c] = r
		case plugin.CapabilityRevocationCheckVerifier:
			resp.VerificationResults[c] = p.checkRevocation(ctx, a, signed, req, !trusted || len(a.unknownCritical) > 0)
		default:
			return nil, plugin.NewValidationErrorf("capability %q is not supported", c)
		}
	}
	return resp, nil
}

// checkRevocation asks AWS Signer, in the region and partition of the
// signing profile, whether the signing job, the profile version or a
// certificate of the chain was revoked. A signature that already failed
// is not asked about: nobody can make Signet call AWS by presenting
// untrusted signatures.
func (p *signerPlugin) checkRevocation(ctx context.Context, a *attempt, signed profileARN, req *plugin.VerifySignatureRequest, failed bool) *plugin.VerificationResult {
	if failed {
		return &plugin.VerificationResult{Success: false, Reason: "not checked: the signature already failed"}
	}
	if p.revocations == nil {
		return &plugin.VerificationResult{Success: false, Reason: "no revocation checker configured"}
	}
	chain := make([]*x509.Certificate, 0, len(req.Signature.CertificateChain))
	for _, der := range req.Signature.CertificateChain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return &plugin.VerificationResult{Success: false, Reason: "certificate chain does not parse: " + err.Error()}
		}
		chain = append(chain, c)
	}
	ans, err := p.revocations.revoked(ctx, revocationQuery{
		region:            signed.arn.Region,
		profileVersionARN: a.profileVersion,
		jobARN:            a.job,
		signingTime:       *req.Signature.CriticalAttributes.AuthenticSigningTime,
		certificateHashes: certificateHashes(chain),
	})
	switch {
	case err != nil && p.mode == RevocationBestEffort:
		a.warning = fmt.Sprintf("revocation of signing job %s not checked: %v; admitted because revocation is BestEffort", a.job, err)
		return &plugin.VerificationResult{Success: true, Reason: err.Error()}
	case err != nil:
		a.revocationErr = err
		return &plugin.VerificationResult{Success: false, Reason: err.Error()}
	case len(ans.revoked) > 0:
		a.revoked = ans.revoked
		return &plugin.VerificationResult{Success: false, Reason: "revoked: " + strings.Join(ans.revoked, ", ")}
	}
	a.validUntil = ans.until
	return &plugin.VerificationResult{Success: true, Reason: "not revoked"}
}

func stringAttribute(attrs map[string]any, key string) (string, error) {
	if s, ok := attrs[key].(string); ok && s != "" {
		return s, nil
	}
	return "", plugin.NewValidationErrorf("signature has no %s attribute", key)
}

var errSigningOnly = errors.New("signet's AWS Signer plugin only verifies")

func (p *signerPlugin) DescribeKey(context.Context, *plugin.DescribeKeyRequest) (*plugin.DescribeKeyResponse, error) {
	return nil, errSigningOnly
}

func (p *signerPlugin) GenerateSignature(context.Context, *plugin.GenerateSignatureRequest) (*plugin.GenerateSignatureResponse, error) {
	return nil, errSigningOnly
}

func (p *signerPlugin) GenerateEnvelope(context.Context, *plugin.GenerateEnvelopeRequest) (*plugin.GenerateEnvelopeResponse, error) {
	return nil, errSigningOnly
}
