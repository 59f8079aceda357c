package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/signet-dev/signet/pkg/policy"
)

// Output formats (--output).
const (
	formatText = "text"
	formatJSON = "json"
)

// write prints the decision: text is one line per image; json is the
// same content as a document (see docs/cli.md for its fields).
func write(w io.Writer, format string, d policy.Decision) error {
	if format == formatJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(toJSON(d))
	}
	for _, img := range d.Images {
		if _, err := fmt.Fprintf(w, "%s: %s\n", strings.ToUpper(string(img.Verdict)), img.Message()); err != nil {
			return err
		}
		for _, warning := range img.VerifierWarnings() {
			if _, err := fmt.Fprintf(w, "WARNING: %s\n", warning); err != nil {
				return err
			}
		}
	}
	return nil
}

// jsonDecision is the documented JSON output.
type jsonDecision struct {
	Allowed bool        `json:"allowed"`
	Images  []jsonImage `json:"images"`
}

type jsonImage struct {
	Image     string       `json:"image"`
	Digest    string       `json:"digest,omitempty"`
	Verdict   string       `json:"verdict"`
	NoMatch   bool         `json:"noMatch,omitempty"`
	Transient bool         `json:"transient,omitempty"`
	Message   string       `json:"message"`
	Policies  []jsonPolicy `json:"policies,omitempty"`
}

type jsonPolicy struct {
	Name       string `json:"name"`
	Mode       string `json:"mode"`
	Satisfied  bool   `json:"satisfied"`
	AdmittedBy string `json:"admittedBy,omitempty"`
	NotReady   string `json:"notReady,omitempty"`
	// BreakGlass: the policy failed and break-glass admitted the image.
	BreakGlass  bool            `json:"breakGlass,omitempty"`
	Authorities []jsonAuthority `json:"authorities,omitempty"`
}

type jsonAuthority struct {
	Name     string   `json:"name"`
	Trusts   string   `json:"trusts"`
	Reason   string   `json:"reason"`
	Cause    string   `json:"cause,omitempty"`
	Signer   string   `json:"signer,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Attestations the authority requires, once its signature verified.
	Attestations []jsonAttestation `json:"attestations,omitempty"`
}

// jsonAttestation is one required attestation and what was found for it.
type jsonAttestation struct {
	Name          string `json:"name"`
	PredicateType string `json:"predicateType"`
	Satisfied     bool   `json:"satisfied"`
	Reason        string `json:"reason"`
	// Found is empty when no attestation of the type is stored.
	Found []jsonAttestationFound `json:"found"`
}

type jsonAttestationFound struct {
	Where     string `json:"where"`
	Statement string `json:"statement,omitempty"`
	Satisfied bool   `json:"satisfied"`
	Reason    string `json:"reason"`
}

func toJSONAttestations(ars []policy.AttestationResult) []jsonAttestation {
	var out []jsonAttestation
	for _, a := range ars {
		ja := jsonAttestation{Name: a.Name, PredicateType: a.PredicateType, Satisfied: a.Satisfied, Reason: a.Cause, Found: []jsonAttestationFound{}}
		for _, f := range a.Found {
			ja.Found = append(ja.Found, jsonAttestationFound{Where: f.Where, Statement: f.Statement, Satisfied: f.Satisfied, Reason: f.Cause})
		}
		out = append(out, ja)
	}
	return out
}

func toJSON(d policy.Decision) jsonDecision {
	out := jsonDecision{Allowed: d.Allowed(), Images: []jsonImage{}}
	for _, img := range d.Images {
		ji := jsonImage{
			Image: img.Image, Digest: img.Digest, Verdict: string(img.Verdict), NoMatch: img.NoMatch,
			Transient: img.TransientFailure(), Message: img.Message(),
		}
		ji.Policies = policiesJSON(img.Policies)
		out.Images = append(out.Images, ji)
	}
	return out
}

func policiesJSON(ps []policy.PolicyResult) []jsonPolicy {
	var out []jsonPolicy
	for _, p := range ps {
		jp := jsonPolicy{Name: p.Policy, Mode: string(p.Mode), Satisfied: p.Satisfied, AdmittedBy: p.SatisfiedBy, NotReady: p.NotReady, BreakGlass: p.BrokenGlass}
		for _, a := range p.Authorities {
			jp.Authorities = append(jp.Authorities, jsonAuthority{
				Name: a.Name, Trusts: a.Describe, Reason: string(a.Result.Reason), Cause: a.Result.Cause,
				Signer: a.Result.Signer, Warnings: a.Result.Warnings, Attestations: toJSONAttestations(a.Result.Attestations),
			})
		}
		out = append(out, jp)
	}
	return out
}
