package cosign

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/signet-dev/signet/pkg/policy"
)

// outcome is what checking one candidate with one key found.
type outcome struct {
	reason policy.Reason
	cause  string
}

// check verifies one candidate against key and the image digest h, with
// cosign's own verification functions:
//
//   - simple-signing signatures (the .sig tag and its OCI 1.1 referrer
//     form) with cosign.VerifyImageSignature, which checks the signature
//     over the payload with the key and then runs SimpleClaimVerifier:
//     critical.image.docker-manifest-digest must equal h;
//   - Sigstore bundles with cosign.VerifyNewBundle (sigstore-go), which
//     checks the DSSE envelope's signature with the key and that the
//     in-toto statement's subject carries h.
//
// Neither consults a transparency log (Options.Tlog is TlogNone).
func (v *Verifier) check(ctx context.Context, key *publicKey, c *candidate, h v1.Hash) outcome {
	switch {
	case c.invalid != "":
		return outcome{policy.ReasonInvalidSignature, c.invalid}
	case c.legacy != nil:
		return v.checkLegacy(ctx, key, c, h)
	default:
		return v.checkBundle(ctx, key, c, h)
	}
}

func (v *Verifier) checkOpts(key *publicKey) *cosign.CheckOpts {
	return &cosign.CheckOpts{
		SigVerifier: key.verifier,
		// The seam for Rekor and TSA: with another TlogPolicy these become
		// the log's keys (TrustedMaterial, RekorPubKeys) and IgnoreTlog false.
		IgnoreTlog: v.tlog == TlogNone,
		IgnoreSCT:  true,
		// Key-based bundle verification takes the key from SigVerifier;
		// sigstore-go still wants a (here empty) trusted-material set.
		TrustedMaterial: root.TrustedMaterialCollection{},
	}
}

func (v *Verifier) checkLegacy(ctx context.Context, key *publicKey, c *candidate, h v1.Hash) outcome {
	co := v.checkOpts(key)
	var claimErr error
	co.ClaimVerifier = func(sig oci.Signature, d v1.Hash, ann map[string]any) error {
		claimErr = cosign.SimpleClaimVerifier(sig, d, ann)
		return claimErr
	}
	_, err := cosign.VerifyImageSignature(ctx, c.legacy, h, co)
	switch {
	case err == nil:
		return outcome{policy.ReasonVerified, "signature in " + c.where + " verified"}
	case claimErr != nil:
		// The key signed this payload, but not for this image.
		p, _ := c.legacy.Payload()
		var ss payload.SimpleContainerImage
		if json.Unmarshal(p, &ss) == nil && ss.Critical.Image.DockerManifestDigest != "" {
			return outcome{policy.ReasonDigestMismatch, "signature in " + c.where + " was made for " + ss.Critical.Image.DockerManifestDigest}
		}
		return outcome{policy.ReasonInvalidSignature, "signed payload in " + c.where + " is not a cosign simple-signing payload"}
	}
	var b64 base64.CorruptInputError
	if errors.As(err, &b64) {
		return outcome{policy.ReasonInvalidSignature, "signature in " + c.where + " is not valid base64"}
	}
	return outcome{policy.ReasonInvalidSignature, "signature in " + c.where + " does not verify with the key"}
}

func (v *Verifier) checkBundle(ctx context.Context, key *publicKey, c *candidate, h v1.Hash) outcome {
	// cosign sign writes a DSSE envelope holding an in-toto statement; a
	// bare message signature would bind no image.
	if c.bundle.GetDsseEnvelope() == nil {
		return outcome{policy.ReasonInvalidSignature, "bundle in " + c.where + " holds no DSSE envelope"}
	}
	digest, err := hex.DecodeString(h.Hex)
	if err != nil {
		return outcome{policy.ReasonInvalidSignature, "image digest is not hex"}
	}
	co := v.checkOpts(key)
	res, err := cosign.VerifyNewBundle(ctx, co, verify.WithArtifactDigest(h.Algorithm, digest), c.bundle)
	if err != nil {
		// Tell a valid signature for another image from a bad signature:
		// verify the envelope alone.
		res, err2 := cosign.VerifyNewBundle(ctx, co, verify.WithoutArtifactUnsafe(), c.bundle)
		if err2 == nil && res.Statement != nil {
			for _, s := range res.Statement.GetSubject() {
				if d := s.GetDigest()[h.Algorithm]; d != "" {
					return outcome{policy.ReasonDigestMismatch, "signature in " + c.where + " was made for " + h.Algorithm + ":" + d}
				}
			}
			return outcome{policy.ReasonDigestMismatch, "signature in " + c.where + " names no " + h.Algorithm + " subject"}
		}
		return outcome{policy.ReasonInvalidSignature, "signature in " + c.where + " does not verify with the key"}
	}
	// An attestation (cosign attest) made with the same key binds the image
	// too, but says something else about it than "approved".
	if pt := res.Statement.GetPredicateType(); pt != ctypes.CosignSignPredicateType {
		return outcome{policy.ReasonInvalidSignature, "bundle in " + c.where + " is an attestation (" + pt + "), not a cosign signature"}
	}
	return outcome{policy.ReasonVerified, "signature in " + c.where + " verified"}
}
