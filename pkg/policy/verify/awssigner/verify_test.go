package awssigner_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/verify/awssigner"
	"github.com/signet-dev/signet/test/signerpki"
)

// want is a case's expected result.
type want struct {
	reason policy.Reason
	cause  string
	signer string
}

func verified(signer string) want { return want{reason: policy.ReasonVerified, signer: signer} }

// TestVerify signs images as AWS Signer does (or as it never would) on both
// registries of the stack and checks the exact verdict. Revocation is
// enforced against the Signer test server, which revokes nothing unless a
// case says so.
func TestVerify(t *testing.T) {
	f := setup(t)
	checker := f.checker(t, 0)
	rootSubject := func(ca *signerpki.CA) string { return ca.Cert.Subject.String() }

	for _, tc := range []struct {
		name     string
		profiles []string
		// referrers: the image lives on the registry with the referrers API.
		referrers bool
		arrange   func(t *testing.T, ref name.Digest, desc ocispec.Descriptor) want
	}{{
		name: "by profile ARN, JWS, referrers API", profiles: []string{profileARN}, referrers: true,
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			f.sign(t, ref, f.commercial, jwsType, attrs(versionARN), referrersAPI)
			return verified(versionARN)
		},
	}, {
		name: "by profile ARN, COSE, tag schema", profiles: []string{profileARN},
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			f.sign(t, ref, f.commercial, coseType, attrs(versionARN), tagSchema)
			return verified(versionARN)
		},
	}, {
		name: "by profile-version ARN, JWS, tag schema", profiles: []string{versionARN},
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			f.sign(t, ref, f.commercial, jwsType, attrs(versionARN), tagSchema)
			return verified(versionARN)
		},
	}, {
		name: "by profile-version ARN, COSE, referrers API", profiles: []string{versionARN}, referrers: true,
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			f.sign(t, ref, f.commercial, coseType, attrs(versionARN), referrersAPI)
			return verified(versionARN)
		},
	}, {
		name: "profile ARN matches without regard to case", profiles: []string{strings.Replace(profileARN, "ProdProfile", "prodprofile", 1)},
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			f.sign(t, ref, f.commercial, jwsType, attrs(versionARN), tagSchema)
			return verified(versionARN)
		},
	}, {
		name: "profile-version ARN must match exactly", profiles: []string{strings.Replace(versionARN, "Abc123XyZ0", "abc123xyz0", 1)},
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			f.sign(t, ref, f.commercial, jwsType, attrs(versionARN), tagSchema)
			return want{policy.ReasonUntrustedIdentity, "signed by signing profile version " + versionARN + ", which no trusted profile matches", versionARN}
		},
	}, {
		name: "GovCloud profile with the GovCloud root", profiles: []string{govProfileARN}, referrers: true,
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			f.sign(t, ref, f.govcloud, jwsType, attrs(govVersionARN), referrersAPI)
			return verified(govVersionARN)
		},
	}, {
		name: "wrong profile", profiles: []string{profileARN},
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			f.sign(t, ref, f.commercial, jwsType, attrs(otherVersionARN), tagSchema)
			return want{policy.ReasonUntrustedIdentity, "signed by signing profile version " + otherVersionARN + ", which no trusted profile matches", otherVersionARN}
		},
	}, {
		name: "commercial signature against a GovCloud-only policy", profiles: []string{govProfileARN}, referrers: true,
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			f.sign(t, ref, f.commercial, jwsType, attrs(versionARN), referrersAPI)
			return want{reason: policy.ReasonUntrustedIdentity, cause: fmt.Sprintf("certificate chain ends at %q, which is not a trusted AWS Signer root", rootSubject(f.commercialRoot))}
		},
	}, {
		name: "commercial chain claiming a GovCloud profile", profiles: []string{govProfileARN},
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			f.sign(t, ref, f.commercial, jwsType, attrs(govVersionARN), tagSchema)
			return want{reason: policy.ReasonUntrustedIdentity, cause: fmt.Sprintf("certificate chain ends at %q, which is not a trusted AWS Signer root", rootSubject(f.commercialRoot))}
		},
	}, {
		name: "foreign root", profiles: []string{profileARN}, referrers: true,
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			f.sign(t, ref, f.foreign, jwsType, attrs(versionARN), referrersAPI)
			return want{reason: policy.ReasonUntrustedIdentity, cause: `certificate chain ends at "CN=Foreign Root CA,OU=Cryptography,O=Signet Test,ST=WA,C=US", which is not a trusted AWS Signer root`}
		},
	}, {
		name: "revoked signing job", profiles: []string{profileARN}, referrers: true,
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			a := attrs(versionARN)
			f.sign(t, ref, f.commercial, jwsType, a, referrersAPI)
			f.signer.RevokeJob(a.JobARN)
			return want{policy.ReasonRevoked, "revoked in AWS Signer: signing job " + a.JobARN, versionARN}
		},
	}, {
		name: "revoked profile version", profiles: []string{profileARN},
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			version := profileARN + "/Revoked001"
			f.sign(t, ref, f.commercial, coseType, attrs(version), tagSchema)
			f.signer.RevokeProfileVersion(version, time.Time{})
			return want{policy.ReasonRevoked, "revoked in AWS Signer: signing profile version " + version, version}
		},
	}, {
		name: "profile version revoked only for later signatures", profiles: []string{profileARN},
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			version := profileARN + "/Revoked002"
			f.sign(t, ref, f.commercial, jwsType, attrs(version), tagSchema)
			f.signer.RevokeProfileVersion(version, time.Now().Add(time.Hour))
			return verified(version)
		},
	}, {
		name: "revoked certificate", profiles: []string{profileARN}, referrers: true,
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			ca := newIntermediate(t, f.commercialRoot, "Signet Test Signer eu-west-1 Code Signing CA G1")
			f.sign(t, ref, newLeaf(t, ca, signerpki.Validity{}), jwsType, attrs(versionARN), referrersAPI)
			// AWS Signer's identifier of the intermediate: its TBS hash, then its issuer's.
			f.signer.RevokeCertificate(tbsHash(ca.Cert) + tbsHash(f.commercialRoot.Cert))
			return want{policy.ReasonRevoked, fmt.Sprintf("revoked in AWS Signer: certificate %q", ca.Cert.Subject.String()), versionARN}
		},
	}, {
		name: "expired signature", profiles: []string{profileARN},
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			now := time.Now()
			leaf := newLeaf(t, f.commercialCA, signerpki.Validity{NotBefore: now.Add(-3 * time.Hour), NotAfter: now.Add(72 * time.Hour)})
			a := attrs(versionARN)
			a.SigningTime, a.Expiry = now.Add(-2*time.Hour), time.Hour
			f.sign(t, ref, leaf, jwsType, a, tagSchema)
			return want{reason: policy.ReasonExpired, cause: "signature expired at " + a.SigningTime.Add(time.Hour).Truncate(time.Second).UTC().Format(time.RFC3339)}
		},
	}, {
		name: "leaf expired since, valid when signed", profiles: []string{profileARN}, referrers: true,
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			now := time.Now()
			// AWS Signer leaves live three days; signatures much longer.
			leaf := newLeaf(t, f.commercialCA, signerpki.Validity{NotBefore: now.Add(-96 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
			a := attrs(versionARN)
			a.SigningTime = now.Add(-48 * time.Hour)
			f.sign(t, ref, leaf, jwsType, a, referrersAPI)
			return verified(versionARN)
		},
	}, {
		// notation-core-go will not sign with a certificate that is not
		// valid at the signing time; the envelope's x5c is not signed, so
		// the leaf is swapped for one with the same key, valid only later.
		name: "leaf not valid at the signing time", profiles: []string{profileARN}, referrers: true,
		arrange: func(t *testing.T, ref name.Digest, desc ocispec.Descriptor) want {
			a := attrs(versionARN)
			a.SigningTime = time.Now().Add(-time.Minute).Truncate(time.Second)
			env := envelope(t, f.commercial, desc, jwsType, a)
			later := newLeafWithKey(t, f.commercialCA, f.commercial.Key, signerpki.Validity{NotBefore: time.Now().Add(time.Hour).Truncate(time.Second), NotAfter: time.Now().Add(72 * time.Hour).Truncate(time.Second)})
			f.push(t, ref, desc, jwsType, replaceJWSLeaf(t, env, later.Certs[0].Raw), referrersAPI)
			leaf := later.Certs[0]
			return want{reason: policy.ReasonExpired, cause: fmt.Sprintf("certificate %q was not valid at the signing time %s (valid %s to %s)",
				leaf.Subject.String(), a.SigningTime.UTC().Format(time.RFC3339), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))}
		},
	}, {
		name: "unknown non-critical attribute is ignored", profiles: []string{profileARN},
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			a := attrs(versionARN)
			a.NonCritical = map[string]string{"com.example.note": "informational"}
			f.sign(t, ref, f.commercial, coseType, a, tagSchema)
			return verified(versionARN)
		},
	}, {
		name: "unknown critical attribute", profiles: []string{profileARN},
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			a := attrs(versionARN)
			a.Extra = map[string]string{"com.example.policy": "must-understand"}
			f.sign(t, ref, f.commercial, jwsType, a, tagSchema)
			return want{policy.ReasonInvalidSignature, `signature carries unknown critical attribute "com.example.policy"`, versionARN}
		},
	}, {
		name: "no AWS Signer verification plugin attribute", profiles: []string{profileARN}, referrers: true,
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			a := attrs(versionARN)
			a.NoVerificationPlugin = true
			f.sign(t, ref, f.commercial, jwsType, a, referrersAPI)
			return want{reason: policy.ReasonUntrustedIdentity, cause: "signature was not made by AWS Signer (signing scheme notary.x509.signingAuthority, verification plugin none)"}
		},
	}, {
		name: "tampered payload, JWS", profiles: []string{profileARN}, referrers: true,
		arrange: func(t *testing.T, ref name.Digest, desc ocispec.Descriptor) want {
			env := envelope(t, f.commercial, desc, jwsType, attrs(versionARN))
			f.push(t, ref, desc, jwsType, tamperJWS(t, env), referrersAPI)
			return want{reason: policy.ReasonInvalidSignature, cause: "signature does not match its payload (tampered or corrupt)"}
		},
	}, {
		name: "tampered payload, COSE", profiles: []string{profileARN},
		arrange: func(t *testing.T, ref name.Digest, desc ocispec.Descriptor) want {
			env := envelope(t, f.commercial, desc, coseType, attrs(versionARN))
			f.push(t, ref, desc, coseType, tamperCOSE(t, env, desc), tagSchema)
			return want{reason: policy.ReasonInvalidSignature, cause: "signature does not match its payload (tampered or corrupt)"}
		},
	}, {
		name: "signature of another image", profiles: []string{profileARN}, referrers: true,
		arrange: func(t *testing.T, ref name.Digest, desc ocispec.Descriptor) want {
			_, other := f.image(t, ref.RegistryStr())
			f.push(t, ref, desc, jwsType, envelope(t, f.commercial, other, jwsType, attrs(versionARN)), referrersAPI)
			return want{policy.ReasonDigestMismatch, "signature was made for " + other.Digest.String(), versionARN}
		},
	}, {
		name: "target descriptor with another media type", profiles: []string{profileARN},
		arrange: func(t *testing.T, ref name.Digest, desc ocispec.Descriptor) want {
			signed := desc
			signed.MediaType = ocispec.MediaTypeImageIndex
			f.push(t, ref, desc, coseType, envelope(t, f.commercial, signed, coseType, attrs(versionARN)), tagSchema)
			return want{policy.ReasonDigestMismatch, fmt.Sprintf("signature was made for %s as %d bytes of %s, but the registry serves %d bytes of %s",
				desc.Digest, desc.Size, ocispec.MediaTypeImageIndex, desc.Size, ocispec.MediaTypeImageManifest), versionARN}
		},
	}, {
		name: "not signed", profiles: []string{profileARN}, referrers: true,
		arrange: func(*testing.T, name.Digest, ocispec.Descriptor) want {
			return want{reason: policy.ReasonNoSignature, cause: "no signature found"}
		},
	}, {
		// Signatures pushed before the registry had the referrers API exist
		// only in the tag schema's index.
		name: "signature only under the referrers tag, on a registry with the API", profiles: []string{profileARN}, referrers: true,
		arrange: func(t *testing.T, ref name.Digest, desc ocispec.Descriptor) want {
			f.pushLegacy(t, ref, coseType, envelope(t, f.commercial, desc, coseType, attrs(versionARN)))
			return verified(versionARN)
		},
	}, {
		name: "an untrusted and a trusted signature", profiles: []string{profileARN},
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			f.sign(t, ref, f.foreign, jwsType, attrs(versionARN), tagSchema)
			f.sign(t, ref, f.commercial, jwsType, attrs(otherVersionARN), tagSchema)
			f.sign(t, ref, f.commercial, coseType, attrs(versionARN), tagSchema)
			return verified(versionARN)
		},
	}, {
		name: "two failures: the most telling wins", profiles: []string{profileARN}, referrers: true,
		arrange: func(t *testing.T, ref name.Digest, _ ocispec.Descriptor) want {
			f.sign(t, ref, f.foreign, jwsType, attrs(versionARN), referrersAPI)
			a := attrs(versionARN)
			f.sign(t, ref, f.commercial, jwsType, a, referrersAPI)
			f.signer.RevokeJob(a.JobARN)
			return want{policy.ReasonRevoked, "2 signatures found, none valid: revoked in AWS Signer: signing job " + a.JobARN, versionARN}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			host := f.stack.Registry
			if tc.referrers {
				host = f.stack.ReferrersRegistry
			}
			ref, desc := f.image(t, host)
			w := tc.arrange(t, ref, desc)
			got := verify(t, f.verifier(t, checker, awssigner.RevocationEnforce, tc.profiles...), ref)
			expect(t, got, w.reason, w.cause, w.signer)
			if got.Image != ref.String() || got.Authority != "signer profile "+tc.profiles[0] || len(got.Warnings) != 0 {
				t.Errorf("image %q, authority %q, warnings %q", got.Image, got.Authority, got.Warnings)
			}
		})
	}

	t.Run("image not found", func(t *testing.T) {
		ref, err := name.NewDigest(f.stack.Registry + "/awssigner/missing@sha256:" + strings.Repeat("ab", 32))
		if err != nil {
			t.Fatal(err)
		}
		got := verify(t, f.verifier(t, checker, awssigner.RevocationEnforce, profileARN), ref)
		expect(t, got, policy.ReasonNoSignature, "image not found: the registry has no manifest sha256:"+strings.Repeat("ab", 32), "")
	})
}

// envelope is an AWS Signer-shaped envelope for target.
func envelope(t *testing.T, chain *signerpki.Chain, target ocispec.Descriptor, mediaType string, a signerpki.Attributes) []byte {
	t.Helper()
	env, err := chain.Envelope(target, mediaType, a)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// tamperJWS changes the signed payload of a JWS envelope (the target's
// size), keeping the signature.
func tamperJWS(t *testing.T, env []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(env, &m); err != nil {
		t.Fatal(err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(m["payload"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]map[string]any
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatal(err)
	}
	p["targetArtifact"]["size"] = p["targetArtifact"]["size"].(float64) + 1
	payload, _ = json.Marshal(p)
	m["payload"] = base64.RawURLEncoding.EncodeToString(payload)
	out, _ := json.Marshal(m)
	return out
}

// tamperCOSE changes one character of the digest inside a COSE envelope's
// payload, keeping the signature.
func tamperCOSE(t *testing.T, env []byte, target ocispec.Descriptor) []byte {
	t.Helper()
	hexDigest := []byte(target.Digest.Encoded())
	i := bytes.Index(env, hexDigest)
	if i < 0 {
		t.Fatal("digest not found in the COSE payload")
	}
	out := bytes.Clone(env)
	if out[i] == 'a' {
		out[i] = 'b'
	} else {
		out[i] = 'a'
	}
	return out
}

// replaceJWSLeaf swaps the leaf certificate in a JWS envelope's unsigned
// header.
func replaceJWSLeaf(t *testing.T, env, leaf []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(env, &m); err != nil {
		t.Fatal(err)
	}
	x5c := m["header"].(map[string]any)["x5c"].([]any)
	x5c[0] = base64.StdEncoding.EncodeToString(leaf)
	out, _ := json.Marshal(m)
	return out
}
