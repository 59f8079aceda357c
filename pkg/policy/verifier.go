package policy

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Verifier checks the signatures one authority of a ClusterImagePolicy
// trusts. There is one implementation per signature scheme, each in its own
// package under pkg/policy/verify (cosign with AWS KMS or PEM keys, AWS Signer).
//
// A Verifier is built once per policy generation and shared by every request:
// Verify must be safe for concurrent use and must not call AWS for keys or
// trust material per verification (those are loaded when the verifier is
// built and refreshed in the background).
type Verifier interface {
	// Verify reports whether img carries a valid signature from this
	// authority. It returns no error: every failure is a Result whose Reason
	// tells "not signed" apart from "could not check" (Transient), so callers
	// can cache and word them differently.
	Verify(ctx context.Context, img Image) Result

	// Identity is a stable string naming everything this verifier trusts:
	// key fingerprint, signing-profile ARNs, revocation mode. Two verifiers
	// with the same Identity reach the same verdict for the same digest, so
	// it keys the shared verdict cache (with the digest) and survives a
	// policy being re-applied unchanged. It starts with the scheme's name
	// and a semicolon ("cosign;…", "awssigner;…"): metrics label
	// verifications with it (see Scheme).
	Identity() string

	// Describe names the trusted signer for people, e.g.
	// "awskms:///alias/cosign" or "signer profile arn:aws:signer:...".
	Describe() string
}

// Image is one image to verify.
type Image struct {
	// Ref is pinned to a digest: signatures are looked up for, and must
	// bind, exactly this manifest digest. Tags are resolved by the caller.
	Ref name.Digest

	// Keychain supplies registry credentials for this request (for example
	// a Pod's imagePullSecrets). Nil means the verifier's default keychain.
	// Credentials decide what may be read: a verified digest is a fact
	// about the digest whoever asked, but every other answer (access
	// denied, not found, no signature) may be the credentials' doing.
	Keychain authn.Keychain

	// KeychainID fingerprints Keychain (never its secrets): the verdict
	// cache shares results other than Verified only among requests with the
	// same fingerprint. Empty: Signet's own credentials.
	KeychainID string
}

// Reason is a machine-readable verification outcome.
type Reason string

// Reasons a verification can end with. Only ReasonVerified admits.
const (
	ReasonVerified Reason = "Verified"
	// ReasonNoSignature: no signature of this scheme exists for the digest.
	ReasonNoSignature Reason = "NoSignature"
	// ReasonInvalidSignature: signatures exist but none verifies with the
	// trusted key or chain (wrong key, tampered payload, corrupt encoding).
	ReasonInvalidSignature Reason = "InvalidSignature"
	// ReasonDigestMismatch: a signature is valid but signs another digest
	// (copied from another image).
	ReasonDigestMismatch Reason = "DigestMismatch"
	// ReasonUntrustedIdentity: validly signed, but by a signer the policy
	// does not trust (another signing profile, a foreign root).
	ReasonUntrustedIdentity Reason = "UntrustedIdentity"
	// ReasonExpired: the signature or a certificate in its chain expired.
	ReasonExpired Reason = "Expired"
	// ReasonRevoked: the signing job, profile version or certificate was revoked.
	ReasonRevoked Reason = "Revoked"
	// ReasonRevocationUnavailable: revocation could not be checked (transient).
	ReasonRevocationUnavailable Reason = "RevocationUnavailable"
	// ReasonKeyUnavailable: the authority's key could not be loaded (transient).
	ReasonKeyUnavailable Reason = "KeyUnavailable"
	// ReasonRegistryUnavailable: the registry could not be read (transient).
	ReasonRegistryUnavailable Reason = "RegistryUnavailable"
	// ReasonTimeout: verification did not finish within the caller's
	// deadline (transient; the work may finish in the background).
	ReasonTimeout Reason = "Timeout"
	// ReasonLimitExceeded: the registry served more than Signet reads
	// (manifest or payload too large, too many signatures, redirects).
	ReasonLimitExceeded Reason = "LimitExceeded"
	// ReasonBusy: every verification slot of the process stayed taken
	// until the caller's deadline; nothing was checked (Signet's failure,
	// transient).
	ReasonBusy Reason = "Busy"
	// ReasonAttestationUnsatisfied: the signature verified, but an
	// attestation the authority requires is missing, signed by another key,
	// made for another digest, too old, or fails its condition.
	ReasonAttestationUnsatisfied Reason = "AttestationUnsatisfied"
)

// Transient reports whether the outcome says nothing about the signature
// itself: the same request may succeed once a registry or AWS recovers.
func (r Reason) Transient() bool {
	switch r {
	case ReasonRegistryUnavailable, ReasonKeyUnavailable, ReasonRevocationUnavailable, ReasonTimeout, ReasonBusy:
		return true
	}
	return false
}

// Result is the outcome of one Verifier.Verify call.
type Result struct {
	// Image is the digest reference that was verified.
	Image string
	// Authority is the verifier's Describe().
	Authority string
	Reason    Reason
	// Cause is one lower-case clause saying why, without the image or
	// authority: "no signature found", "signature was made for sha256:...".
	Cause string
	// Signer names who signed, when verified: the key or the AWS Signer
	// profile-version ARN.
	Signer string
	// Warnings are admitted-but-noteworthy facts (for example a revocation
	// check skipped in BestEffort mode because Signer was unreachable).
	Warnings []string
	// ValidUntil, when set, is when an answer the result relied on expires
	// (AWS Signer's revocation status): the verdict cache keeps the result
	// no longer, so a revocation is noticed within one answer's lifetime.
	ValidUntil time.Time
	// RegistryDenied: the registry refused the credentials used (HTTP 401
	// or 403). The engine then tries again with Signet's own credentials,
	// and the cache keeps the answer for these credentials only.
	RegistryDenied bool
	// Attestations are the checks of the attestations the authority
	// requires, in the policy's order (empty when it requires none, or when
	// its signature did not verify).
	Attestations []AttestationResult
}

// AttestationResult is one required attestation's check.
type AttestationResult struct {
	Name          string
	PredicateType string // the URI
	Satisfied     bool
	// Cause says why it is not satisfied, or which attestation satisfied it.
	Cause string
	// Found are the attestations of this type that were examined.
	Found []AttestationFound
}

// AttestationFound is one attestation examined for a requirement.
type AttestationFound struct {
	Where string // "the sha256-….att tag", "referrer sha256:…"
	// Statement is the sha256 digest of the in-toto statement (the DSSE
	// payload), which tells apart several attestations in one place; empty
	// when it could not be read.
	Statement string
	Satisfied bool
	Cause     string // "satisfied", or why not
}

// Verified reports whether the image is admitted by this authority.
func (r Result) Verified() bool { return r.Reason == ReasonVerified }

// Transient reports whether the failure was infrastructure, not the signature.
func (r Result) Transient() bool { return r.Reason.Transient() }

// Message is the one-line account of the result for logs and CLI output.
func (r Result) Message() string {
	if r.Verified() {
		return fmt.Sprintf("image %s: signed by %s (authority %s)", r.Image, r.Signer, r.Authority)
	}
	return fmt.Sprintf("image %s: authority %s: %s", r.Image, r.Authority, r.Cause)
}
