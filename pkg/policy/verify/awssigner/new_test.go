package awssigner_test

import (
	"encoding/pem"
	"testing"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy/verify/awssigner"
)

func pemOf(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }

// TestNew checks what a policy can and cannot ask for.
func TestNew(t *testing.T) {
	reg := oci.New(oci.Options{})
	if _, err := awssigner.NewRevocationChecker(awssigner.RevocationOptions{}); err == nil || err.Error() != "awssigner: RevocationOptions.Clients is required" {
		t.Fatalf("NewRevocationChecker without clients: %v", err)
	}
	commercialOnly, err := awssigner.RootsFromPEM(newRoot(t, "Test Root").PEM())
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		opts awssigner.Options
		want string
	}{
		{"wildcard", awssigner.Options{Profiles: []string{"*"}, Revocation: awssigner.RevocationSkip},
			`awssigner: "*": wildcards are not allowed; name signing profiles by ARN`},
		{"wildcard in a name", awssigner.Options{Profiles: []string{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/*"}, Revocation: awssigner.RevocationSkip},
			`awssigner: "arn:aws:signer:us-west-2:111122223333:/signing-profiles/*": wildcards are not allowed; name signing profiles by ARN`},
		{"not a Signer ARN", awssigner.Options{Profiles: []string{"arn:aws:kms:us-west-2:111122223333:key/abc"}, Revocation: awssigner.RevocationSkip},
			`awssigner: "arn:aws:kms:us-west-2:111122223333:key/abc" is not an AWS Signer signing-profile ARN (arn:PARTITION:signer:REGION:ACCOUNT:/signing-profiles/NAME[/VERSION])`},
		{"a signing job", awssigner.Options{Profiles: []string{"arn:aws:signer:us-west-2:111122223333:/signing-jobs/abc"}, Revocation: awssigner.RevocationSkip},
			`awssigner: "arn:aws:signer:us-west-2:111122223333:/signing-jobs/abc" is not an AWS Signer signing-profile ARN (arn:PARTITION:signer:REGION:ACCOUNT:/signing-profiles/NAME[/VERSION])`},
		{"China partition", awssigner.Options{Profiles: []string{"arn:aws-cn:signer:cn-north-1:111122223333:/signing-profiles/Prod"}, Revocation: awssigner.RevocationSkip},
			`awssigner: "arn:aws-cn:signer:cn-north-1:111122223333:/signing-profiles/Prod": Signet knows no AWS Signer root for partition aws-cn`},
		{"no root for GovCloud", awssigner.Options{Profiles: []string{govProfileARN}, Revocation: awssigner.RevocationSkip, Roots: commercialOnly},
			`awssigner: "` + govProfileARN + `" needs an AWS Signer root for trust store aws-us-gov-signer-ts, and the configured roots have none`},
		{"no profiles", awssigner.Options{Revocation: awssigner.RevocationSkip}, "awssigner: no signing profiles to trust"},
		{"Enforce without a checker", awssigner.Options{Profiles: []string{profileARN}}, "awssigner: revocation mode Enforce needs Options.Revocations"},
		{"unknown mode", awssigner.Options{Profiles: []string{profileARN}, Revocation: "Sometimes"}, `awssigner: revocation mode "Sometimes" is not one of Enforce, BestEffort, Skip`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Registry = reg
			_, err := awssigner.New(tc.opts)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error = %v\nwant    %s", err, tc.want)
			}
		})
	}

	t.Run("identity and description", func(t *testing.T) {
		v, err := awssigner.New(awssigner.Options{Profiles: []string{profileARN, govVersionARN}, Revocation: awssigner.RevocationSkip, Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := v.Describe(), "signer profiles "+profileARN+", "+govVersionARN; got != want {
			t.Errorf("Describe() = %q, want %q", got, want)
		}
		wantID := "awssigner;profiles=" + govVersionARN + ",arn:aws:signer:us-west-2:111122223333:/signing-profiles/prodprofile;revocation=Skip;roots=" + awssigner.DefaultRoots().Fingerprint()
		if got := v.Identity(); got != wantID {
			t.Errorf("Identity() = %q\nwant         %q", got, wantID)
		}
		// Profile ARNs match without regard to case, so their case does not
		// change the identity; the order of profiles does not either.
		v2, err := awssigner.New(awssigner.Options{Profiles: []string{govVersionARN, "arn:aws:signer:us-west-2:111122223333:/signing-profiles/PRODPROFILE"}, Revocation: awssigner.RevocationSkip, Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		if v2.Identity() != v.Identity() {
			t.Errorf("Identity() differs: %q", v2.Identity())
		}
	})
}
