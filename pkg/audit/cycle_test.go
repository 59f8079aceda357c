package audit

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/signet-dev/signet/pkg/policy"
)

// TestCycleVerifiesEachDigestOnce: Pods sharing a digest share its
// verification, and a verdict still cached is not verified again on the
// next cycle.
func TestCycleVerifiesEachDigestOnce(t *testing.T) {
	f := newAuditFixture(t)
	pods := map[string]string{}
	for i := range 30 {
		pods[fmt.Sprintf("p-%02d", i)] = map[int]string{0: f.signed, 1: f.unsigned, 2: f.signed + "@" + f.signedDigest}[i%3]
	}
	ns, _ := f.namespace(t, pods)
	auditor := &Auditor{Engine: f.engine, Policies: func() []*policy.Policy { return f.policies }, Reader: f.c, Namespace: ns}
	for i, want := range []uint64{2, 0} {
		rep, err := auditor.Cycle(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		states := map[State]int{}
		for _, p := range rep.Pods {
			for _, img := range p.Images {
				states[img.State]++
			}
		}
		if len(rep.Pods) != 30 || rep.Verifications != want || !reflect.DeepEqual(states, map[State]int{StateVerified: 20, StateViolation: 10}) {
			t.Fatalf("cycle %d: %d Pods, %d verifications (want %d), states %v", i+1, len(rep.Pods), rep.Verifications, want, states)
		}
	}
}
