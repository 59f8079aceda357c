package cosign

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/singleflight"

	"github.com/signet-dev/signet/internal/awsclient"
)

// KMSKey is one awskms:// key, loaded once and shared by every verifier
// that names the same URI. Verification reads the key from memory; KMS is
// called only:
//
//   - when the key is first loaded (KMSKeys.Get, at policy load);
//   - every RefreshInterval by KMSKeys.Start's loop;
//   - for alias keys, after a verification found signatures and none of
//     them verified: the alias may have been re-pointed (UpdateAlias) to
//     the key the pipeline now signs with. That refresh happens at most once
//     per MinRefreshGap per key, so a flood of badly signed images costs at
//     most one GetPublicKey a minute. Key IDs and key ARNs are never
//     refreshed on failure: KMS cannot rotate an asymmetric key's material.
//
// A refresh that fails for a transient reason (throttling, network, 5xx,
// access denied) keeps the last good key: a KMS hiccup must not deny every
// admission. A refresh that says the key is gone (NotFound: deleted key or
// alias; Disabled; pending deletion) drops it, because disabling or deleting
// the key is how a team revokes it: verification then ends KeyUnavailable.
type KMSKey struct {
	ref    kmsRef
	client awsclient.KMS
	opts   *KMSKeysOptions

	state atomic.Pointer[keyState]
	group singleflight.Group

	mu          sync.Mutex
	lastAttempt time.Time
}

// keyState is one immutable snapshot of a key.
type keyState struct {
	key *publicKey // nil when the key is unusable
	err error      // why key is nil
	// lastErr is the last refresh's error when it kept the previous key.
	lastErr error
}

// URI is the key's awskms:// URI.
func (k *KMSKey) URI() string { return k.ref.URI }

// Fingerprint is the current key's "SHA256:<hex>" fingerprint, or "" when
// the key is unusable.
func (k *KMSKey) Fingerprint() string {
	if s := k.state.Load(); s != nil && s.key != nil {
		return s.key.fingerprint
	}
	return ""
}

// Err reports the key's health for policy status: why it is unusable, or
// the last refresh error while the previous key stays in use; nil when the
// last refresh succeeded.
func (k *KMSKey) Err() error {
	s := k.state.Load()
	if s == nil {
		return errors.New("not loaded")
	}
	if s.err != nil {
		return s.err
	}
	return s.lastErr
}

// current returns the key to verify with.
func (k *KMSKey) current() (*publicKey, error) {
	s := k.state.Load()
	if s == nil {
		return nil, fmt.Errorf("KMS key %s is not loaded", k.ref.URI)
	}
	if s.key == nil {
		return nil, s.err
	}
	return s.key, nil
}

// ensure returns the key, reading it from KMS first if it was never read
// (a key of KMSKeysOptions.Lazy); concurrent first uses share one read.
func (k *KMSKey) ensure(ctx context.Context) (*publicKey, error) {
	if k.state.Load() == nil {
		if _, err := k.Refresh(ctx); err != nil && k.state.Load() == nil {
			return nil, err
		}
	}
	return k.current()
}

// Refresh reads the key from KMS now and reports whether it changed.
// Concurrent calls share one GetPublicKey.
func (k *KMSKey) Refresh(ctx context.Context) (changed bool, err error) {
	before := k.Fingerprint()
	ch := k.group.DoChan("refresh", func() (any, error) { return nil, k.refresh(ctx) })
	select {
	case res := <-ch:
		return k.Fingerprint() != before, res.Err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// refreshAfterFailure is called when signatures were found but none
// verified. For alias keys it refreshes, unless another refresh was tried
// within MinRefreshGap, and reports whether the key changed, in which case
// the caller verifies again.
func (k *KMSKey) refreshAfterFailure(ctx context.Context) bool {
	if !k.ref.Alias {
		return false
	}
	k.mu.Lock()
	recent := k.opts.Now().Sub(k.lastAttempt) < k.opts.MinRefreshGap
	k.mu.Unlock()
	if recent {
		return false
	}
	changed, _ := k.Refresh(ctx)
	return changed
}

// refresh runs one GetPublicKey and installs the outcome. It is detached
// from the caller's cancellation (other callers may share it) but bounded
// by FetchTimeout.
func (k *KMSKey) refresh(ctx context.Context) error {
	k.mu.Lock()
	k.lastAttempt = k.opts.Now()
	k.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.opts.FetchTimeout)
	defer cancel()
	key, err := k.fetch(ctx)
	prev := k.state.Load()
	switch {
	case err == nil:
		k.state.Store(&keyState{key: key})
	case prev == nil:
		// First load: the caller (KMSKeys.Get) reports it.
	case keyGone(err):
		k.state.Store(&keyState{err: err})
	default:
		k.state.Store(&keyState{key: prev.key, err: prev.err, lastErr: err})
	}
	return err
}

func (k *KMSKey) fetch(ctx context.Context) (*publicKey, error) {
	out, err := k.client.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(k.ref.KeyID)})
	if err != nil {
		return nil, &kmsError{uri: k.ref.URI, err: err}
	}
	key, err := keyFromKMS(out.PublicKey, out.KeyUsage, out.SigningAlgorithms, aws.ToString(out.KeyId))
	if err != nil {
		return nil, &unusableKeyError{fmt.Errorf("KMS key %s: %w", k.ref.URI, err)}
	}
	return key, nil
}

// kmsError is a failed GetPublicKey, worded for a policy's status and a
// denial: KMS's error code and message (and request ID, for AWS support)
// when KMS answered; that it did not answer in time, or answered what is
// not KMS's API; the SDK's account of any other failure.
type kmsError struct {
	uri string
	err error
}

func (e *kmsError) Error() string {
	var ae smithy.APIError
	if !errors.As(e.err, &ae) {
		var ne net.Error
		var re *awshttp.ResponseError
		var de *smithy.DeserializationError
		switch {
		case errors.Is(e.err, context.DeadlineExceeded) || errors.As(e.err, &ne) && ne.Timeout():
			return fmt.Sprintf("KMS GetPublicKey for %s: no answer in time", e.uri)
		case errors.As(e.err, &re) && errors.As(e.err, &de):
			// A proxy's or captive portal's page, not KMS's API.
			return fmt.Sprintf("KMS GetPublicKey for %s: HTTP %d that is not a KMS answer", e.uri, re.HTTPStatusCode())
		}
		return fmt.Sprintf("KMS GetPublicKey for %s: %v", e.uri, e.err)
	}
	msg := fmt.Sprintf("KMS GetPublicKey for %s: %s: %s", e.uri, ae.ErrorCode(), ae.ErrorMessage())
	var re *awshttp.ResponseError
	if errors.As(e.err, &re) && re.ServiceRequestID() != "" {
		msg += " (request ID " + re.ServiceRequestID() + ")"
	}
	return msg
}

func (e *kmsError) Unwrap() error { return e.err }

// unusableKeyError: KMS answered, but with a key cosign cannot verify with
// (an alias moved to an encryption key, an unsupported algorithm).
type unusableKeyError struct{ err error }

func (e *unusableKeyError) Error() string { return e.err.Error() }
func (e *unusableKeyError) Unwrap() error { return e.err }

// keyGone reports whether KMS said the key cannot be used any more, as
// opposed to a failure to ask.
func keyGone(err error) bool {
	var ue *unusableKeyError
	if errors.As(err, &ue) {
		return true
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "NotFoundException", "DisabledException", "KMSInvalidStateException":
		return true
	}
	return false
}
