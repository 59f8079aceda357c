package awssigner

import "testing"

// TestProfileARNMatches is AWS Signer's trusted-identity rule: a profile
// ARN trusts every version of the profile, compared without regard to
// case; a profile-version ARN trusts exactly that version.
func TestProfileARNMatches(t *testing.T) {
	const signed = "arn:aws:signer:us-west-2:111122223333:/signing-profiles/ProdProfile/Abc123XyZ0"
	for _, tc := range []struct {
		trusted string
		want    bool
	}{
		{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/ProdProfile", true},
		{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/prodprofile", true},
		{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/ProdProfile/Abc123XyZ0", true},
		{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/ProdProfile/abc123xyz0", false},
		{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/ProdProfile/Other00001", false},
		{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod", false},
		{"arn:aws:signer:us-east-1:111122223333:/signing-profiles/ProdProfile", false},
		{"arn:aws:signer:us-west-2:444455556666:/signing-profiles/ProdProfile", false},
		{"arn:aws-us-gov:signer:us-west-2:111122223333:/signing-profiles/ProdProfile", false},
	} {
		p, err := parseProfileARN(tc.trusted)
		if err != nil {
			t.Fatalf("%s: %v", tc.trusted, err)
		}
		if got := p.matches(signed); got != tc.want {
			t.Errorf("%s matches %s = %v, want %v", tc.trusted, signed, got, tc.want)
		}
	}
}
