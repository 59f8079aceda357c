package awssigner_test

import (
	"context"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/verify/awssigner"
)

// TestLimits: the registry layer's limits hold for Notation signatures.
func TestLimits(t *testing.T) {
	f := setup(t)

	t.Run("signatures examined", func(t *testing.T) {
		limits := oci.DefaultLimits
		limits.MaxSignatures = 2
		ref, _ := f.image(t, f.stack.ReferrersRegistry)
		for range 3 {
			f.sign(t, ref, f.commercial, jwsType, attrs(otherVersionARN), referrersAPI)
		}
		v, err := awssigner.New(awssigner.Options{Profiles: []string{profileARN}, Revocation: awssigner.RevocationSkip, Roots: f.roots, Registry: oci.New(oci.Options{Limits: limits})})
		if err != nil {
			t.Fatal(err)
		}
		expect(t, verify(t, v, ref), policy.ReasonLimitExceeded, "2 signatures examined (Signet's limit on signatures examined per image) and none verifies", "")
	})

	for _, st := range []storage{referrersAPI, tagSchema} {
		t.Run([]string{"signature payload/referrers API", "signature payload/tag schema"}[st], func(t *testing.T) {
			limits := oci.DefaultLimits
			limits.MaxPayloadBytes = 512
			host := f.stack.ReferrersRegistry
			if st == tagSchema {
				host = f.stack.Registry
			}
			ref, desc := f.image(t, host)
			f.sign(t, ref, f.commercial, jwsType, attrs(versionARN), st)
			var sig ocispec.Descriptor
			if err := oci.Referrers(context.Background(), f.remote(t, ref.RegistryStr(), ref.RepositoryStr()), desc, "", oci.DefaultLimits, func(d []ocispec.Descriptor) error {
				sig = d[0]
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			v, err := awssigner.New(awssigner.Options{Profiles: []string{profileARN}, Revocation: awssigner.RevocationSkip, Roots: f.roots, Registry: oci.New(oci.Options{Limits: limits})})
			if err != nil {
				t.Fatal(err)
			}
			expect(t, verify(t, v, ref), policy.ReasonLimitExceeded,
				"reading signature "+sig.Digest.String()+": registry exceeded Signet's limit on signature payload (512)", "")
		})
	}
}
