package policy

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

type recordingObserver struct {
	mu   sync.Mutex
	seen []string
}

func (o *recordingObserver) ObserveVerification(scheme string, cache Outcome, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, fmt.Sprintf("%s/%s", scheme, cache))
}

func TestObserverSeesEveryVerification(t *testing.T) {
	f := newFixture()
	f.kms.id = "cosign;key=SHA256:abc"
	f.other.id = "awssigner;profiles=p"
	policies := compileAll(t, f,
		cip("prod", v1alpha1.ModeEnforce, []string{reg + "/**"}, kmsAuth("other", "awskms:///alias/other"), kmsAuth("ci-kms", "awskms:///alias/cosign")))
	obs := &recordingObserver{}
	e := &Engine{Cache: NewVerdictCache(CacheOptions{}), Observer: obs}
	req := Request{Images: []ImageRef{{Ref: reg + "/app@" + dA}}}
	e.Evaluate(context.Background(), policies, req)
	e.Evaluate(context.Background(), policies, req)
	want := []string{"awssigner/miss", "cosign/miss", "awssigner/hit", "cosign/hit"}
	if fmt.Sprint(obs.seen) != fmt.Sprint(want) {
		t.Fatalf("observed %v, want %v", obs.seen, want)
	}
}

func TestScheme(t *testing.T) {
	for id, want := range map[string]string{
		"cosign;key=SHA256:abc;schemes=ECDSA_SHA_256;tlog=None": "cosign",
		"cosign;unavailable;awskms:///alias/x":                  "cosign",
		"awssigner;profiles=a;revocation=Enforce;roots=r":       "awssigner",
		"kms":         SchemeUnknown,
		";no-scheme":  SchemeUnknown,
		"":            SchemeUnknown,
		"custom;k=v;": "custom",
	} {
		if got := Scheme(&scriptedVerifier{id: id}); got != want {
			t.Errorf("Scheme(%q) = %q, want %q", id, got, want)
		}
	}
}

// An image whose tag does not resolve is still governed: the decision
// names the policies it failed, so metrics and the CLI's JSON can too.
func TestUnresolvedImageNamesItsPolicies(t *testing.T) {
	f := newFixture()
	policies := compileAll(t, f,
		cip("prod", v1alpha1.ModeEnforce, []string{reg + "/**"}, kmsAuth("ci-kms", "awskms:///alias/cosign")),
		cip("rollout", v1alpha1.ModeWarn, []string{reg + "/**"}, kmsAuth("other", "awskms:///alias/other")))
	e := &Engine{Cache: NewVerdictCache(CacheOptions{}), Resolver: mapResolver{}}
	d := e.Evaluate(context.Background(), policies, Request{Images: []ImageRef{{Ref: reg + "/app:missing"}}})
	got := d.Images[0]
	want := []PolicyResult{{Policy: "prod", Mode: v1alpha1.ModeEnforce}, {Policy: "rollout", Mode: v1alpha1.ModeWarn}}
	if fmt.Sprint(got.Policies) != fmt.Sprint(want) || got.Verdict != VerdictDenied || !got.Transient {
		t.Fatalf("decision %+v, want policies %+v, denied, transient", got, want)
	}
}
