package awssigner

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// profileARN is a parsed signing-profile or profile-version ARN:
// arn:PARTITION:signer:REGION:ACCOUNT:/signing-profiles/NAME[/VERSION].
type profileARN struct {
	raw     string
	arn     arn.ARN
	name    string
	version string // "" for a profile ARN
}

var (
	profileNameRE    = regexp.MustCompile(`^[A-Za-z0-9_]{2,64}$`)
	profileVersionRE = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
	accountRE        = regexp.MustCompile(`^[0-9]{12}$`)
)

// parseProfileARN parses s, which must be a profile ARN or a
// profile-version ARN of AWS Signer. Wildcards are not identities.
func parseProfileARN(s string) (profileARN, error) {
	if strings.Contains(s, "*") {
		return profileARN{}, fmt.Errorf("%q: wildcards are not allowed; name signing profiles by ARN", s)
	}
	a, err := arn.Parse(s)
	if err != nil {
		return profileARN{}, fmt.Errorf("%q is not an ARN: %w", s, err)
	}
	if a.Service != "signer" || a.Region == "" || !accountRE.MatchString(a.AccountID) || !strings.HasPrefix(a.Resource, "/signing-profiles/") {
		return profileARN{}, fmt.Errorf("%q is not an AWS Signer signing-profile ARN (arn:PARTITION:signer:REGION:ACCOUNT:/signing-profiles/NAME[/VERSION])", s)
	}
	parts := strings.Split(strings.TrimPrefix(a.Resource, "/signing-profiles/"), "/")
	p := profileARN{raw: s, arn: a, name: parts[0]}
	switch {
	case len(parts) == 1 && profileNameRE.MatchString(parts[0]):
	case len(parts) == 2 && profileNameRE.MatchString(parts[0]) && profileVersionRE.MatchString(parts[1]):
		p.version = parts[1]
	default:
		return profileARN{}, fmt.Errorf("%q is not an AWS Signer signing-profile ARN (arn:PARTITION:signer:REGION:ACCOUNT:/signing-profiles/NAME[/VERSION])", s)
	}
	return p, nil
}

// trustStore is the trust store of the profile's partition.
func (p profileARN) trustStore() (string, error) {
	switch p.arn.Partition {
	case "aws":
		return StoreCommercial, nil
	case "aws-us-gov":
		return StoreGovCloud, nil
	}
	return "", fmt.Errorf("%q: Signet knows no AWS Signer root for partition %s", p.raw, p.arn.Partition)
}

// matches reports whether a signature made with the profile version
// signed (a profile-version ARN from the signature) is trusted by p: a
// profile ARN trusts every version of the profile (compared without
// regard to case, as AWS Signer's plugin does), a profile-version ARN
// exactly that version.
func (p profileARN) matches(signed string) bool {
	if p.version != "" {
		return signed == p.raw
	}
	i := strings.LastIndex(signed, "/")
	return i > 0 && strings.EqualFold(signed[:i], p.raw)
}

// key is p as verdicts depend on it: profile ARNs match without regard to
// case, so their case does not change a verdict.
func (p profileARN) key() string {
	if p.version == "" {
		return strings.ToLower(p.raw)
	}
	return p.raw
}
