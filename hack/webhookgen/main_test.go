package main

import (
	"os"
	"testing"
)

// TestCommittedManifestIsCurrent: config/webhook/manifests.yaml is what the
// table of kinds generates.
func TestCommittedManifestIsCurrent(t *testing.T) {
	if err := os.Chdir("../.."); err != nil {
		t.Fatal(err)
	}
	if err := run(true); err != nil {
		t.Fatal(err)
	}
}
