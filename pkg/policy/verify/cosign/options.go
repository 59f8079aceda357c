package cosign

import (
	"errors"
	"fmt"
	"time"

	"github.com/signet-dev/signet/internal/oci"
)

// TlogPolicy says what transparency-log evidence a signature needs.
type TlogPolicy string

// Transparency-log policies. Only TlogNone exists today: teams sign with
// --tlog-upload=false and nothing is uploaded anywhere. Requiring a Rekor
// inclusion proof or an RFC 3161 timestamp later means a new value here,
// the log's keys in Options, and checkOpts filling cosign.CheckOpts from
// them; discovery and result wording stay as they are.
const (
	// TlogNone: no transparency log and no timestamp authority.
	TlogNone TlogPolicy = "None"
)

// Options configure a Verifier.
type Options struct {
	// Registry is the shared registry layer; every read goes through it.
	Registry *oci.Client
	// Tlog is the transparency-log policy; "" means TlogNone.
	Tlog TlogPolicy
	// Attestations are required besides the signature (key.attestations).
	Attestations []Attestation
	// Now is the clock attestation ages are measured with; nil: time.Now.
	Now func() time.Time
}

func (o *Options) complete() error {
	if o.Registry == nil {
		return errors.New("cosign verifier: Options.Registry is required")
	}
	switch o.Tlog {
	case "":
		o.Tlog = TlogNone
	case TlogNone:
	default:
		return fmt.Errorf("cosign verifier: transparency-log policy %q is not supported (only %q)", o.Tlog, TlogNone)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}
