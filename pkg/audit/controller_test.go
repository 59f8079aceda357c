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
