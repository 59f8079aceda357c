package audit

import (
	"strings"
	"testing"

	"k8s.io/client-go/tools/events"

	"github.com/signet-dev/signet/pkg/policy"
)

func image(path string, state State) ImageReport {
	d := policy.ImageDecision{Path: path, Image: "registry.example/app@sha256:" + strings.Repeat("a", 64)}
	switch state {
	case StateViolation:
		d.Verdict = policy.VerdictDenied
		d.Cause, d.Hint = "no signature found", "Sign it."
	case StateUnverifiable:
		d.Verdict, d.Transient = policy.VerdictDenied, true
		d.Cause, d.Hint = "registry registry.example did not answer in time", "Retry."
	default:
		d.Verdict = policy.VerdictAdmitted
		d.Policies = []policy.PolicyResult{{Policy: "prod", Satisfied: true, SatisfiedBy: "ci-kms"}}
	}
	return ImageReport{State: state, Decision: d}
}

// TestEventsOnChangeOnly: an image's first admissible sighting records
// nothing; each change of state records one Event; an unchanged state
// records none however many cycles see it.
func TestEventsOnChangeOnly(t *testing.T) {
	rec := events.NewFakeRecorder(100)
	c := &Controller{Events: rec, seen: map[seenKey]State{}}
	cycle := func(states ...State) []string {
		rep := &Report{}
		for i, s := range states {
			rep.Pods = append(rep.Pods, PodReport{Namespace: "ns", Name: "p", UID: "uid", Images: []ImageReport{image("spec.containers["+string(rune('0'+i))+"].image", s)}})
		}
		c.recordEvents(rep)
		var out []string
		for len(rec.Events) > 0 {
			out = append(out, <-rec.Events)
		}
		return out
	}
	if got := cycle(StateVerified); len(got) != 0 {
		t.Fatalf("first sight of a verified image: %q", got)
	}
	want := "Warning ImageNotAdmissible image registry.example/app@sha256:" + strings.Repeat("a", 64) + " (spec.containers[0].image) denied: no signature found. Sign it."
	if got := cycle(StateViolation); len(got) != 1 || got[0] != want {
		t.Fatalf("violation: %q, want [%q]", got, want)
	}
	if got := cycle(StateViolation); len(got) != 0 {
		t.Fatalf("the same violation again: %q", got)
	}
	if got := cycle(StateUnverifiable); len(got) != 1 || !strings.HasPrefix(got[0], "Warning ImageUnverifiable ") {
		t.Fatalf("unverifiable: %q", got)
	}
	if got := cycle(StateVerified); len(got) != 1 || !strings.HasPrefix(got[0], "Normal ImageAdmissible image registry.example/app@sha256:") {
		t.Fatalf("admissible again: %q", got)
	}
}

func TestStateOf(t *testing.T) {
	transient := policy.AuthorityResult{Result: policy.Result{Reason: policy.ReasonRegistryUnavailable}}
	final := policy.AuthorityResult{Result: policy.Result{Reason: policy.ReasonNoSignature}}
	for name, tt := range map[string]struct {
		d    policy.ImageDecision
		want State
	}{
		"admitted":                {policy.ImageDecision{Verdict: policy.VerdictAdmitted, Policies: []policy.PolicyResult{{Satisfied: true}}}, StateVerified},
		"ungoverned, allowed":     {policy.ImageDecision{Verdict: policy.VerdictAdmitted, NoMatch: true}, StateUngoverned},
		"ungoverned, denied":      {policy.ImageDecision{Verdict: policy.VerdictDenied, NoMatch: true}, StateViolation},
		"warned (Warn mode)":      {policy.ImageDecision{Verdict: policy.VerdictWarned, Policies: []policy.PolicyResult{{Authorities: []policy.AuthorityResult{final}}}}, StateViolation},
		"only transient failures": {policy.ImageDecision{Verdict: policy.VerdictDenied, Policies: []policy.PolicyResult{{Authorities: []policy.AuthorityResult{transient, transient}}}}, StateUnverifiable},
		"one final failure":       {policy.ImageDecision{Verdict: policy.VerdictDenied, Policies: []policy.PolicyResult{{Authorities: []policy.AuthorityResult{transient, final}}}}, StateViolation},
		"resolution timed out":    {policy.ImageDecision{Verdict: policy.VerdictDenied, Transient: true}, StateUnverifiable},
		"policy not ready":        {policy.ImageDecision{Verdict: policy.VerdictDenied, Policies: []policy.PolicyResult{{NotReady: "KMS key unavailable"}}}, StateViolation},
	} {
		if got := stateOf(tt.d); got != tt.want {
			t.Errorf("%s: %s, want %s", name, got, tt.want)
		}
	}
}

func TestClipNoteKeepsUTF8(t *testing.T) {
	s := strings.Repeat("é", 600) // 1200 bytes
	got := clipNote(s)
	if len(got) > 1024 || !strings.HasSuffix(got, "…") || !strings.HasPrefix(s, strings.TrimSuffix(got, "…")) {
		t.Fatalf("clipNote: %d bytes, %q…", len(got), got[len(got)-8:])
	}
}

// TestFinding: the row a report gives an image names what decided its state.
func TestFinding(t *testing.T) {
	transient := policy.AuthorityResult{Name: "ecr", Result: policy.Result{Reason: policy.ReasonRegistryUnavailable}}
	final := policy.AuthorityResult{Name: "kms", Result: policy.Result{Reason: policy.ReasonNoSignature}}
	verified := policy.AuthorityResult{Name: "kms", Result: policy.Result{Reason: policy.ReasonVerified}}
	for name, tt := range map[string]struct {
		d    policy.ImageDecision
		want Finding
	}{
		"verified": {policy.ImageDecision{Verdict: policy.VerdictAdmitted, Policies: []policy.PolicyResult{{Policy: "prod", Satisfied: true, SatisfiedBy: "kms", Authorities: []policy.AuthorityResult{transient, verified}}}},
			Finding{Policy: "prod", Authority: "kms", Reason: policy.ReasonVerified}},
		"ungoverned": {policy.ImageDecision{Verdict: policy.VerdictAdmitted, NoMatch: true}, Finding{Reason: ReasonNoMatch}},
		"the final failure explains a violation": {policy.ImageDecision{Verdict: policy.VerdictDenied, Policies: []policy.PolicyResult{
			{Policy: "a", Authorities: []policy.AuthorityResult{transient}}, {Policy: "b", Authorities: []policy.AuthorityResult{transient, final}}}},
			Finding{Policy: "b", Authority: "kms", Reason: policy.ReasonNoSignature}},
		"the transient failure explains an unverifiable image": {policy.ImageDecision{Verdict: policy.VerdictDenied, Policies: []policy.PolicyResult{
			{Policy: "a", Authorities: []policy.AuthorityResult{transient}}}},
			Finding{Policy: "a", Authority: "ecr", Reason: policy.ReasonRegistryUnavailable}},
		"policy not ready": {policy.ImageDecision{Verdict: policy.VerdictDenied, Policies: []policy.PolicyResult{{Policy: "p", NotReady: "KMS key unavailable"}}},
			Finding{Policy: "p", Reason: ReasonPolicyNotReady}},
		"tag not resolved": {policy.ImageDecision{Verdict: policy.VerdictDenied, Cause: "no answer", Transient: true, Policies: []policy.PolicyResult{{Policy: "p"}}},
			Finding{Policy: "p", Reason: policy.ReasonRegistryUnavailable}},
		"image unreadable": {policy.ImageDecision{Verdict: policy.VerdictDenied, Cause: "403", Policies: []policy.PolicyResult{{Policy: "p"}}},
			Finding{Policy: "p", Reason: ReasonImageUnreadable}},
		"bad reference":   {policy.ImageDecision{Verdict: policy.VerdictDenied, Cause: "bad", Hint: "Fix the image reference."}, Finding{Reason: ReasonInvalidReference}},
		"too many images": {policy.ImageDecision{Verdict: policy.VerdictDenied, Cause: "the object names 300 distinct images"}, Finding{Reason: ReasonTooManyImages}},
	} {
		if got := (ImageReport{Decision: tt.d, State: stateOf(tt.d)}).Finding(); got != tt.want {
			t.Errorf("%s: %+v, want %+v", name, got, tt.want)
		}
	}
}
