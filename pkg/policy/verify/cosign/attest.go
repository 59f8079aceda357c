package cosign

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/in-toto/in-toto-golang/in_toto"
	slsa02 "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v0.2"
	slsa1 "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v1"
	"github.com/sigstore/cosign/v2/pkg/cosign/attestation"
)

// Attestation is one in-toto attestation an authority requires besides its
// signature (ClusterImagePolicy key.attestations[]).
type Attestation struct {
	Name string
	// PredicateType is a cosign short name (vuln, slsaprovenance1, …) or a URI.
	PredicateType string
	// MaxAge, when positive, is how old the attestation may be (see ageFields).
	MaxAge time.Duration
	// Condition, when set, is a CEL expression over predicate and statement.
	Condition string
}

// predicateTypes is cosign's mapping of `cosign attest --type` short names
// to predicate type URIs (options.PredicateTypeMap in
// github.com/sigstore/cosign/v2/cmd/cosign/cli/options), built from the
// same constants. The CLI package itself is not linked into Signet (it
// brings cobra and a hundred packages); a test keeps the two equal.
var predicateTypes = map[string]string{
	"custom":           attestation.CosignCustomProvenanceV01,
	"slsaprovenance":   slsa02.PredicateSLSAProvenance,
	"slsaprovenance02": slsa02.PredicateSLSAProvenance,
	"slsaprovenance1":  slsa1.PredicateSLSAProvenance,
	"spdx":             in_toto.PredicateSPDX,
	"spdxjson":         in_toto.PredicateSPDX,
	"cyclonedx":        in_toto.PredicateCycloneDX,
	"link":             in_toto.PredicateLinkV1,
	"vuln":             attestation.CosignVulnProvenanceV01,
	"openvex":          attestation.OpenVexNamespace,
}

// PredicateTypeURI maps a short name to its URI as cosign does (and
// validates a URI the same way, url.ParseRequestURI).
func PredicateTypeURI(t string) (string, error) {
	if uri, ok := predicateTypes[t]; ok {
		return uri, nil
	}
	if _, err := url.ParseRequestURI(t); err != nil {
		return "", fmt.Errorf("%q is neither one of cosign's predicate types (custom, slsaprovenance, slsaprovenance02, slsaprovenance1, spdx, spdxjson, cyclonedx, link, vuln, openvex) nor a URI", t)
	}
	return t, nil
}

// ageFields is where each predicate type records when its facts were
// established: the age maxAge bounds is now minus that time. Types not
// listed (link, SPDX's and others' URIs Signet has no rule for) record no
// time Signet trusts, so a maxAge on them is never met.
const metadata = "metadata"

var ageFields = map[string][]string{
	attestation.CosignVulnProvenanceV01:   {metadata, "scanFinishedOn"},
	slsa1.PredicateSLSAProvenance:         {"runDetails", metadata, "finishedOn"},
	slsa02.PredicateSLSAProvenance:        {metadata, "buildFinishedOn"},
	in_toto.PredicateSPDX:                 {"creationInfo", "created"},
	in_toto.PredicateCycloneDX:            {metadata, "timestamp"},
	attestation.CosignCustomProvenanceV01: {"timestamp"},
	attestation.OpenVexNamespace:          {"timestamp"},
}

// requirement is one Attestation compiled.
type requirement struct {
	Attestation
	uri  string
	cond *condition // nil: no condition
}

// AttestationError is an attestation requirement that does not compile:
// Index is its position, Field "predicateType" or "condition".
type AttestationError struct {
	Index int
	Field string
	Value string
	Msg   string
}

func (e *AttestationError) Error() string {
	return fmt.Sprintf("attestations[%d].%s: %s", e.Index, e.Field, e.Msg)
}

// compileRequirements maps predicate types and compiles conditions.
func compileRequirements(atts []Attestation, maxBytes int64) ([]requirement, error) {
	var out []requirement
	for i, a := range atts {
		uri, err := PredicateTypeURI(a.PredicateType)
		if err != nil {
			return nil, &AttestationError{Index: i, Field: "predicateType", Value: a.PredicateType, Msg: err.Error()}
		}
		r := requirement{Attestation: a, uri: uri}
		if strings.TrimSpace(a.Condition) != "" {
			c, err := compileCondition(a.Condition, maxBytes)
			if err != nil {
				return nil, &AttestationError{Index: i, Field: "condition", Value: a.Condition, Msg: "invalid CEL condition: " + err.Error()}
			}
			r.cond = c
		}
		out = append(out, r)
	}
	return out, nil
}
