package policy

import (
	"context"
	"fmt"
	"testing"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// BenchmarkGlobMatchOver100Policies: the cost of finding the policies that
// govern one image when 100 policies are in force.
func BenchmarkGlobMatchOver100Policies(b *testing.B) {
	var policies []*Policy
	for i := 0; i < 100; i++ {
		g, err := CompileGlob(fmt.Sprintf("%d.dkr.ecr.*.amazonaws.com/team-%d/**", 100000000000+i, i))
		if err != nil {
			b.Fatal(err)
		}
		policies = append(policies, &Policy{Name: fmt.Sprint(i), Mode: v1alpha1.ModeEnforce, Globs: []*Glob{g}})
	}
	ref, err := ParseImage("100000000099.dkr.ecr.us-east-1.amazonaws.com/team-99/app:v1")
	if err != nil {
		b.Fatal(err)
	}
	repo := Repository(ref)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, p := range policies {
			if p.Governs(repo, ObjectContext{}) {
				n++
			}
		}
		if n != 1 {
			b.Fatalf("%d policies govern the image, want 1", n)
		}
	}
}

// BenchmarkVerifyCached: a verification answered from the verdict cache.
func BenchmarkVerifyCached(b *testing.B) {
	c := NewVerdictCache(CacheOptions{})
	v := &countingVerifier{reason: ReasonVerified}
	img := testImage(b, 1)
	c.Verify(context.Background(), v, img)
	b.ReportAllocs()
	for b.Loop() {
		if r, o := c.Verify(context.Background(), v, img); o != OutcomeHit || !r.Verified() {
			b.Fatal("not a verified hit")
		}
	}
}
