package signerpki

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/notaryproject/notation-core-go/signature"
	_ "github.com/notaryproject/notation-core-go/signature/cose" // registers the COSE envelope
	_ "github.com/notaryproject/notation-core-go/signature/jws"  // registers the JWS envelope
	"github.com/notaryproject/notation-go"
	"github.com/notaryproject/notation-go/registry"
	notationsigner "github.com/notaryproject/notation-go/signer"
	"github.com/notaryproject/notation-plugin-framework-go/plugin"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// AWS Signer's names.
const (
	PluginName             = "com.amazonaws.signer.notation.plugin"
	AttrVerificationPlugin = "io.cncf.notary.verificationPlugin"
	AttrProfileVersion     = "com.amazonaws.signer.signingProfileVersion"
	AttrJob                = "com.amazonaws.signer.signingJob"
	payloadContentType     = "application/vnd.cncf.notary.payload.v1+json"
)

// Attributes are what AWS Signer writes into a signature.
type Attributes struct {
	ProfileVersionARN string
	JobARN            string
	// SigningTime is the signing time; zero means now.
	SigningTime time.Time
	// Expiry is the signature validity from the signing time; zero means
	// 30 days (a signing profile's signature validity period).
	Expiry time.Duration
	// Extra are further critical attributes (AWS Signer sets none).
	Extra map[string]string
	// NonCritical are further attributes a verifier may ignore.
	NonCritical map[string]string
	// NoVerificationPlugin leaves io.cncf.notary.verificationPlugin out.
	NoVerificationPlugin bool
}

// Sign signs the manifest artifactRef (a digest or tag) names in repo and
// pushes the signature into repo, as `notation sign --plugin
// com.amazonaws.signer.notation.plugin --id PROFILE-ARN` does: notation.Sign
// with notation-go's plugin signer and an envelope-generating plugin.
func (c *Chain) Sign(ctx context.Context, repo registry.Repository, artifactRef, mediaType string, attrs Attributes) error {
	s, err := notationsigner.NewPluginSigner(&signingPlugin{chain: c, attrs: attrs}, attrs.ProfileVersionARN, nil)
	if err != nil {
		return err
	}
	_, err = notation.Sign(ctx, s, repo, notation.SignOptions{
		SignerSignOptions: notation.SignerSignOptions{SignatureMediaType: mediaType},
		ArtifactReference: artifactRef,
	})
	return err
}

// Envelope signs target and returns the envelope, for tests that push
// something notation.Sign would refuse to (a signature for another image).
func (c *Chain) Envelope(target ocispec.Descriptor, mediaType string, attrs Attributes) ([]byte, error) {
	payload, err := json.Marshal(map[string]ocispec.Descriptor{"targetArtifact": {
		MediaType: target.MediaType, Digest: target.Digest, Size: target.Size, Annotations: target.Annotations,
	}})
	if err != nil {
		return nil, err
	}
	return c.envelope(payload, mediaType, attrs)
}

func (c *Chain) envelope(payload []byte, mediaType string, attrs Attributes) ([]byte, error) {
	local, err := signature.NewLocalSigner(c.Certs, c.Key)
	if err != nil {
		return nil, err
	}
	var ext []signature.Attribute
	if !attrs.NoVerificationPlugin {
		ext = append(ext, signature.Attribute{Key: AttrVerificationPlugin, Critical: true, Value: PluginName})
	}
	ext = append(ext,
		signature.Attribute{Key: AttrProfileVersion, Critical: true, Value: attrs.ProfileVersionARN},
		signature.Attribute{Key: AttrJob, Critical: true, Value: attrs.JobARN},
	)
	for _, m := range []struct {
		attrs    map[string]string
		critical bool
	}{{attrs.Extra, true}, {attrs.NonCritical, false}} {
		keys := make([]string, 0, len(m.attrs))
		for k := range m.attrs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ext = append(ext, signature.Attribute{Key: k, Critical: m.critical, Value: m.attrs[k]})
		}
	}
	t := attrs.SigningTime
	if t.IsZero() {
		t = time.Now()
	}
	expiry := attrs.Expiry
	if expiry == 0 {
		expiry = 30 * 24 * time.Hour
	}
	env, err := signature.NewEnvelope(mediaType)
	if err != nil {
		return nil, err
	}
	return env.Sign(&signature.SignRequest{
		Payload:                  signature.Payload{ContentType: payloadContentType, Content: payload},
		Signer:                   local,
		SigningTime:              t,
		Expiry:                   t.Add(expiry),
		ExtendedSignedAttributes: ext,
		SigningAgent:             "AWS Signer (Signet test PKI)",
		SigningScheme:            signature.SigningSchemeX509SigningAuthority,
	})
}

// signingPlugin plays AWS Signer's plugin and service for signing: it has
// the envelope-generator capability and builds the envelope itself.
type signingPlugin struct {
	chain *Chain
	attrs Attributes
}

var errVerifyOnly = errors.New("the test signing plugin only generates envelopes")

func (p *signingPlugin) GetMetadata(context.Context, *plugin.GetMetadataRequest) (*plugin.GetMetadataResponse, error) {
	return &plugin.GetMetadataResponse{
		Name:                      PluginName,
		Description:               "AWS Signer stand-in for Signet's tests",
		Version:                   "1.0.0",
		URL:                       "https://docs.aws.amazon.com/signer",
		SupportedContractVersions: []string{plugin.ContractVersion},
		Capabilities:              []plugin.Capability{plugin.CapabilityEnvelopeGenerator},
	}, nil
}

func (p *signingPlugin) DescribeKey(context.Context, *plugin.DescribeKeyRequest) (*plugin.DescribeKeyResponse, error) {
	return nil, errVerifyOnly
}

func (p *signingPlugin) GenerateSignature(context.Context, *plugin.GenerateSignatureRequest) (*plugin.GenerateSignatureResponse, error) {
	return nil, errVerifyOnly
}

func (p *signingPlugin) GenerateEnvelope(_ context.Context, req *plugin.GenerateEnvelopeRequest) (*plugin.GenerateEnvelopeResponse, error) {
	env, err := p.chain.envelope(req.Payload, req.SignatureEnvelopeType, p.attrs)
	if err != nil {
		return nil, err
	}
	return &plugin.GenerateEnvelopeResponse{SignatureEnvelope: env, SignatureEnvelopeType: req.SignatureEnvelopeType}, nil
}
