package cosign

import (
	"testing"
)

func TestParseKMSRef(t *testing.T) {
	const id = "1234abcd-12ab-34cd-56ef-1234567890ab"
	for _, tc := range []struct {
		uri     string
		want    kmsRef
		wantErr string
	}{
		{uri: "awskms:///" + id, want: kmsRef{KeyID: id}},
		{uri: "awskms:///mrk-1234abcd12ab34cd56ef1234567890ab", want: kmsRef{KeyID: "mrk-1234abcd12ab34cd56ef1234567890ab"}},
		{uri: "awskms:///alias/cosign", want: kmsRef{KeyID: "alias/cosign", Alias: true}},
		{uri: "awskms:///arn:aws:kms:eu-west-1:111122223333:key/" + id,
			want: kmsRef{KeyID: "arn:aws:kms:eu-west-1:111122223333:key/" + id, Region: "eu-west-1"}},
		{uri: "awskms:///arn:aws:kms:us-east-2:444455556666:alias/ci/cosign",
			want: kmsRef{KeyID: "arn:aws:kms:us-east-2:444455556666:alias/ci/cosign", Region: "us-east-2", Alias: true}},
		{uri: "awskms:///arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/" + id,
			want: kmsRef{KeyID: "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/" + id, Region: "us-gov-west-1"}},
		{uri: "awskms:///arn:aws-cn:kms:cn-north-1:111122223333:alias/cosign",
			want: kmsRef{KeyID: "arn:aws-cn:kms:cn-north-1:111122223333:alias/cosign", Region: "cn-north-1", Alias: true}},
		{uri: "awskms://localhost:4566/alias/cosign",
			wantErr: `"awskms://localhost:4566/alias/cosign" names the KMS endpoint "localhost:4566": Signet reads KMS only through the AWS SDK's configuration; write "awskms:///alias/cosign" and set AWS_ENDPOINT_URL_KMS if you need another endpoint`},
		{uri: "awskms:///not-a-key",
			wantErr: `"awskms:///not-a-key" is not an AWS KMS key URI: want awskms:///KEY_ID, awskms:///alias/NAME, awskms:///arn:PARTITION:kms:REGION:ACCOUNT:key/KEY_ID or an alias ARN`},
		{uri: "awskms:///arn:aws-iso:kms:us-iso-east-1:111122223333:key/" + id,
			wantErr: `"awskms:///arn:aws-iso:kms:us-iso-east-1:111122223333:key/` + id + `" is not an AWS KMS key URI: want awskms:///KEY_ID, awskms:///alias/NAME, awskms:///arn:PARTITION:kms:REGION:ACCOUNT:key/KEY_ID or an alias ARN`},
		{uri: "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
			wantErr: `"gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k" is not an AWS KMS key URI: want awskms:///KEY_ID, awskms:///alias/NAME, awskms:///arn:PARTITION:kms:REGION:ACCOUNT:key/KEY_ID or an alias ARN`},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			got, err := parseKMSRef(tc.uri)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v\nwant    %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.want.URI = tc.uri
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
