package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/notaryproject/notation-core-go/signature"
	"github.com/notaryproject/notation-core-go/signature/jws"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	sigsig "github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/signet-dev/signet/internal/awsclient"
	signertest "github.com/signet-dev/signet/test/servers/signer"
	"github.com/signet-dev/signet/test/signerpki"
)

// floorSamples is how often each part of the floor is measured.
const floorSamples = 200

// floors are the parts of the physical floor of a cold verification,
// measured in the same run as the cases: what no verifier can avoid.
type floors struct {
	// CosignCheck is one cosign signature check alone: the simple-signing
	// payload parsed and its ECDSA signature verified with the KMS key.
	CosignCheck Summary
	// SignerCheck is one Notation envelope check alone: the JWS signature
	// verified and its certificate chain verified to the root.
	SignerCheck Summary
	// Revocation is one AWS Signer GetRevocationStatus round trip to the
	// harness's Signer test server, through aws-sdk-go-v2.
	Revocation Summary
}

// floor is one cold case's floor and how far the case is above it.
type floor struct {
	Case     string
	Requests float64       // registry requests per admission
	RTT      time.Duration // the registry's round trip (p50)
	Check    time.Duration // the signature check alone (p50)
	Revoke   time.Duration // the revocation call (p50), Signer only
	P50      time.Duration // the case's cold p50 at c=1
}

// Floor is requests × RTT + check + revocation.
func (f floor) Floor() time.Duration {
	return time.Duration(f.Requests*float64(f.RTT)) + f.Check + f.Revoke
}

// Multiple is the case's p50 over its floor.
func (f floor) Multiple() float64 {
	if f.Floor() <= 0 {
		return 0
	}
	return float64(f.P50) / float64(f.Floor())
}

// measureFloors times the signature checks and the revocation call.
func (b *bench) measureFloors(ctx context.Context) (floors, error) {
	var fl floors
	b.logf("floor: %d cosign checks, %d Notation envelope checks, %d GetRevocationStatus calls", floorSamples, floorSamples, floorSamples)

	// cosign: a real signature by the run's KMS key over a real payload.
	d, err := name.NewDigest(b.registry + "/" + b.id + "/cosign/floor@sha256:" + strings.Repeat("ab", 32))
	if err != nil {
		return fl, err
	}
	payload, err := sigpayload.Cosign{Image: d}.MarshalJSON()
	if err != nil {
		return fl, err
	}
	sig, err := b.cosign.sv.SignMessage(bytes.NewReader(payload), options.WithContext(ctx))
	if err != nil {
		return fl, fmt.Errorf("KMS Sign: %w", err)
	}
	pub, err := b.cosign.sv.PublicKey(options.WithContext(ctx))
	if err != nil {
		return fl, err
	}
	if fl.CosignCheck, err = timeN(func() error {
		var p sigpayload.SimpleContainerImage
		if err := json.Unmarshal(payload, &p); err != nil {
			return err
		}
		v, err := sigsig.LoadVerifier(pub, crypto.SHA256)
		if err != nil {
			return err
		}
		return v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload))
	}); err != nil {
		return fl, fmt.Errorf("cosign check: %w", err)
	}

	// Notation: an envelope from the run's Signer chain.
	env, err := b.signer.chain.Envelope(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest("sha256:" + strings.Repeat("cd", 32)), Size: 512},
		jws.MediaTypeEnvelope, signerpki.Attributes{ProfileVersionARN: b.signer.versionARN, JobARN: "arn:aws:signer:us-east-1:123456789012:/signing-jobs/floor"})
	if err != nil {
		return fl, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(b.signer.chain.Certs[len(b.signer.chain.Certs)-1])
	if fl.SignerCheck, err = timeN(func() error {
		e, err := signature.ParseEnvelope(jws.MediaTypeEnvelope, env)
		if err != nil {
			return err
		}
		content, err := e.Verify()
		if err != nil {
			return err
		}
		chain := content.SignerInfo.CertificateChain
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		_, err = chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}})
		return err
	}); err != nil {
		return fl, fmt.Errorf("notation check: %w", err)
	}

	// Signer: the revocation call the webhook makes per cold verification.
	cfg, err := awsclient.LoadConfig(ctx)
	if err != nil {
		return fl, err
	}
	sc := awsclient.NewSignerClients(cfg).ForRegion("us-east-1")
	in := &signer.GetRevocationStatusInput{
		ProfileVersionArn:  aws.String(b.signer.versionARN),
		JobArn:             aws.String("arn:aws:signer:us-east-1:123456789012:/signing-jobs/floor"),
		PlatformId:         aws.String(signertest.Platform),
		SignatureTimestamp: aws.Time(time.Now()),
		CertificateHashes:  []string{strings.Repeat("ab", 96)},
	}
	if fl.Revocation, err = timeN(func() error {
		_, err := sc.GetRevocationStatus(ctx, in)
		return err
	}); err != nil {
		return fl, fmt.Errorf("GetRevocationStatus: %w", err)
	}
	b.logf("  floor: cosign check p50 %s ms, Notation check p50 %s ms, GetRevocationStatus p50 %s ms",
		ms(fl.CosignCheck.P50), ms(fl.SignerCheck.P50), ms(fl.Revocation.P50))
	return fl, nil
}

// timeN runs f floorSamples times (after a few unmeasured runs).
func timeN(f func() error) (Summary, error) {
	for range 5 {
		if err := f(); err != nil {
			return Summary{}, err
		}
	}
	lat := make([]time.Duration, 0, floorSamples)
	begin := time.Now()
	for range floorSamples {
		t := time.Now()
		if err := f(); err != nil {
			return Summary{}, err
		}
		lat = append(lat, time.Since(t))
	}
	return summarize(lat, time.Since(begin)), nil
}

// coldFloors pairs each cold c=1 row with its floor.
func (r *report) coldFloors() []floor {
	if len(r.RTT) == 0 {
		return nil
	}
	var out []floor
	for _, c := range []struct {
		name   string
		check  time.Duration
		revoke time.Duration
	}{
		{"cold cosign-KMS", r.Floors.CosignCheck.P50, 0},
		{"cold AWS Signer", r.Floors.SignerCheck.P50, r.Floors.Revocation.P50},
	} {
		row := r.Row(c.name, 1)
		if row == nil {
			continue
		}
		out = append(out, floor{Case: c.name, Requests: row.RegistryPerAdmission, RTT: r.RTT[0].Summary.P50,
			Check: c.check, Revoke: c.revoke, P50: row.Client.P50})
	}
	return out
}

// ColdFloors is coldFloors, for templates.
func (r *report) ColdFloors() []floor { return r.coldFloors() }
