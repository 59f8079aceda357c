// Package cosign verifies cosign signatures made with AWS KMS keys or PEM
// public keys, in-process with the cosign v2 library, for one authority of
// a ClusterImagePolicy.
//
// Keys are loaded when the verifier is built (KMS keys through the shared
// KMSKeys cache, refreshed in the background); a verification reads the
// registry only. Signatures are looked for everywhere cosign puts them: the
// legacy sha256-<hex>.sig tag, Sigstore bundles as OCI referrers (cosign v3
// default, cosign v2 --new-bundle-format), and the OCI 1.1 referrer form of
// simple-signing signatures; the referrers API and its tag-schema fallback
// both work. One signature from the key that binds the image's digest
// admits it.
package cosign

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/signet-dev/signet/pkg/policy"
)

// keySource supplies the key a verification uses.
type keySource interface {
	// current is the key now, never loading it.
	current() (*publicKey, error)
	// ensure is the key, loading it first if it was never loaded.
	ensure(ctx context.Context) (*publicKey, error)
	// refreshAfterFailure may re-read the key after signatures failed to
	// verify, and reports whether it changed.
	refreshAfterFailure(ctx context.Context) bool
}

// Verifier is the policy.Verifier for one cosign key authority.
type Verifier struct {
	describe string
	key      keySource
	opts     Options
	tlog     TlogPolicy
	reqs     []requirement
	// reqsID names the requirements in Identity.
	reqsID string
}

func (v *Verifier) now() time.Time { return v.opts.Now() }

// withRequirements compiles opts.Attestations into v; an error is an
// *AttestationError.
func (v *Verifier) withRequirements() (*Verifier, error) {
	reqs, err := compileRequirements(v.opts.Attestations, v.opts.Registry.Limits().MaxPayloadBytes)
	if err != nil {
		return nil, err
	}
	v.reqs = reqs
	if len(reqs) > 0 {
		b, _ := json.Marshal(v.opts.Attestations)
		sum := sha256.Sum256(b)
		v.reqsID = hex.EncodeToString(sum[:8])
	}
	return v, nil
}

var _ policy.Verifier = (*Verifier)(nil)

// NewKMS builds the verifier for key.kms. The key is read through keys (at
// most once per URI per process, then refreshed by keys.Start); an error
// carries KMS's answer, so the policy is marked not Ready with it.
func NewKMS(ctx context.Context, keys *KMSKeys, uri string, opts Options) (*Verifier, error) {
	if err := opts.complete(); err != nil {
		return nil, err
	}
	// A requirement that does not compile is the policy's fault, whether
	// or not the key can be read now.
	v, err := (&Verifier{describe: uri, opts: opts, tlog: opts.Tlog}).withRequirements()
	if err != nil {
		return nil, err
	}
	k, err := keys.Get(ctx, uri)
	if err != nil {
		return nil, err
	}
	v.key = k
	return v, nil
}

// NewPEM builds the verifier for key.data or key.secretRef from the PEM
// public key itself: the policy store reads a Secret's key and passes its
// bytes here (and builds a new verifier when the Secret changes). name says
// where the key came from for messages, e.g. `secret signet/cosign-pub
// key cosign.pub`; empty means the key's fingerprint.
func NewPEM(name string, pem []byte, opts Options) (*Verifier, error) {
	if err := opts.complete(); err != nil {
		return nil, err
	}
	k, err := keyFromPEM(pem)
	if err != nil {
		if name != "" {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return nil, err
	}
	if name == "" {
		name = "public key " + k.short()
	}
	return (&Verifier{describe: name, key: staticKey{k}, opts: opts, tlog: opts.Tlog}).withRequirements()
}

// staticKey is a PEM key: it never changes.
type staticKey struct{ k *publicKey }

func (s staticKey) current() (*publicKey, error)               { return s.k, nil }
func (s staticKey) ensure(context.Context) (*publicKey, error) { return s.k, nil }
func (staticKey) refreshAfterFailure(context.Context) bool     { return false }

// Identity names the key by fingerprint (not URI: two URIs of one key
// share verdicts; an alias re-pointed to another key does not), with the
// schemes it accepts and the transparency-log policy.
func (v *Verifier) Identity() string {
	k, err := v.key.current()
	if err != nil {
		return "cosign;unavailable;" + v.describe
	}
	id := fmt.Sprintf("cosign;key=%s;schemes=%s;tlog=%s", k.fingerprint, strings.Join(k.schemes, ","), v.tlog)
	if v.reqsID != "" {
		// Two policies trusting one key but requiring different
		// attestations reach different verdicts.
		id += ";attestations=" + v.reqsID
	}
	return id
}

// Describe is the key URI, or the PEM key's name.
func (v *Verifier) Describe() string { return v.describe }
