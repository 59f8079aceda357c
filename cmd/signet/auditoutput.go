package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/signet-dev/signet/pkg/audit"
)

// states in the order the summary line counts them.
var states = []audit.State{audit.StateVerified, audit.StateUngoverned, audit.StateViolation, audit.StateUnverifiable, audit.StateBreakGlass}

// writeAudit prints an audit: text is one line per Pod image, in namespace
// and Pod order, then a summary line; json is the same content as a
// document (see docs/cli.md for its fields).
func writeAudit(w io.Writer, format string, rep *audit.Report) error {
	if format == formatJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(auditJSON(rep))
	}
	images := 0
	for _, p := range rep.Pods {
		for _, img := range p.Images {
			images++
			if _, err := fmt.Fprintf(w, "%s: pod %s/%s: %s\n", strings.ToUpper(string(img.State)), p.Namespace, p.Name, p.Note(img)); err != nil {
				return err
			}
		}
	}
	counts := stateCounts(rep)
	var parts []string
	for _, s := range states {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	summary := fmt.Sprintf("%s in %s", plural(images, "image"), plural(len(rep.Pods), "Pod"))
	if len(parts) > 0 {
		summary += ": " + strings.Join(parts, ", ")
	}
	_, err := fmt.Fprintln(w, summary)
	return err
}

func stateCounts(rep *audit.Report) map[audit.State]int {
	out := map[audit.State]int{}
	for _, p := range rep.Pods {
		for _, img := range p.Images {
			out[img.State]++
		}
	}
	return out
}

// jsonAudit is the documented JSON output of `signet audit`.
type jsonAudit struct {
	Pods    int            `json:"pods"`
	Counts  map[string]int `json:"counts"`
	Cost    jsonCost       `json:"cost"`
	Results []jsonResult   `json:"results"`
}

// jsonCost is what the cycle cost: its time (listing and judging, not
// loading the policies), the verifications it made (each distinct digest at
// most once) and the registry requests.
type jsonCost struct {
	Seconds          float64 `json:"seconds"`
	Verifications    uint64  `json:"verifications"`
	RegistryRequests uint64  `json:"registryRequests"`
}

// jsonResult is one Pod image.
type jsonResult struct {
	Namespace  string       `json:"namespace"`
	Pod        string       `json:"pod"`
	Field      string       `json:"field"`
	Image      string       `json:"image"`
	Digest     string       `json:"digest,omitempty"`
	FromStatus bool         `json:"fromStatus,omitempty"`
	State      string       `json:"state"`
	AuditOnly  bool         `json:"auditOnly,omitempty"`
	BreakGlass string       `json:"breakGlass,omitempty"`
	Policy     string       `json:"policy,omitempty"`
	Authority  string       `json:"authority,omitempty"`
	Reason     string       `json:"reason"`
	Message    string       `json:"message"`
	Policies   []jsonPolicy `json:"policies,omitempty"`
}

func auditJSON(rep *audit.Report) jsonAudit {
	out := jsonAudit{Pods: len(rep.Pods), Counts: map[string]int{}, Results: []jsonResult{},
		Cost: jsonCost{Seconds: rep.Duration.Seconds(), Verifications: rep.Verifications, RegistryRequests: rep.RegistryRequests}}
	for s, n := range stateCounts(rep) {
		out.Counts[string(s)] = n
	}
	for _, p := range rep.Pods {
		for _, img := range p.Images {
			f := img.Finding()
			out.Results = append(out.Results, jsonResult{
				Namespace: p.Namespace, Pod: p.Name, Field: img.Path, Image: img.Spec, Digest: img.Digest(),
				FromStatus: img.FromStatus, State: string(img.State), AuditOnly: p.AuditOnly, BreakGlass: p.BreakGlass,
				Policy: f.Policy, Authority: f.Authority, Reason: string(f.Reason), Message: p.Note(img),
				Policies: policiesJSON(img.Decision.Policies),
			})
		}
	}
	return out
}

// plural: "1 image", "2 images".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
