package cosign

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
	awskms "github.com/sigstore/sigstore/pkg/signature/kms/aws"
)

// kmsRef is a parsed awskms:// key URI.
type kmsRef struct {
	// URI is the URI as the policy wrote it.
	URI string
	// KeyID is what GetPublicKey is called with: a key ID, key ARN, alias
	// name (alias/NAME) or alias ARN, exactly as cosign's signer uses it.
	KeyID string
	// Region is the ARN's region; "" means the AWS configuration's.
	Region string
	// Alias is set for alias names and alias ARNs: the key behind it can
	// change (UpdateAlias), so a verification failure may mean it moved.
	Alias bool
}

// parseKMSRef parses every form cosign accepts, with sigstore's own parser
// so that Signet and `cosign sign --key` agree on what a URI means:
//
//	awskms:///1234abcd-12ab-34cd-56ef-1234567890ab            key ID (also mrk-… multi-Region keys)
//	awskms:///alias/NAME                                      alias in the configured region
//	awskms:///arn:aws:kms:us-east-1:111122223333:key/ID       key ARN (any account; aws, aws-us-gov, aws-cn)
//	awskms:///arn:aws:kms:us-east-1:111122223333:alias/NAME   alias ARN
//
// An ARN names its region (and with it the partition): the key is read
// there, whatever the configured region. Cross-account keys need an ARN,
// as in KMS itself.
//
// The host form (awskms://ENDPOINT/...) is rejected. cosign uses the host as
// the KMS endpoint; Signet takes endpoints only from the AWS SDK's
// configuration (AWS_ENDPOINT_URL_KMS), so that a policy cannot send
// Signet's signed AWS requests to a host of its choosing and every
// verifier in the process reads KMS the same way.
func parseKMSRef(uri string) (kmsRef, error) {
	if err := awskms.ValidReference(uri); err != nil {
		return kmsRef{}, fmt.Errorf("%q is not an AWS KMS key URI: want awskms:///KEY_ID, awskms:///alias/NAME, awskms:///arn:PARTITION:kms:REGION:ACCOUNT:key/KEY_ID or an alias ARN", uri)
	}
	endpoint, keyID, alias, err := awskms.ParseReference(uri)
	if err != nil {
		return kmsRef{}, fmt.Errorf("%q is not an AWS KMS key URI: %w", uri, err)
	}
	if endpoint != "" {
		return kmsRef{}, fmt.Errorf("%q names the KMS endpoint %q: Signet reads KMS only through the AWS SDK's configuration; write %q and set AWS_ENDPOINT_URL_KMS if you need another endpoint",
			uri, endpoint, "awskms:///"+keyID)
	}
	ref := kmsRef{URI: uri, KeyID: keyID, Alias: alias != ""}
	if strings.HasPrefix(keyID, "arn:") {
		a, err := arn.Parse(keyID)
		if err != nil {
			return kmsRef{}, fmt.Errorf("%q: malformed ARN: %w", uri, err)
		}
		ref.Region = a.Region
	}
	return ref, nil
}
