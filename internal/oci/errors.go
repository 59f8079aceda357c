package oci

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Failure is what a registry error means for a verification.
type Failure int

// Failures, from the registry's answers and the network's.
const (
	// FailureNone: no error.
	FailureNone Failure = iota
	// FailureNotFound: the registry answered 404 (no such manifest, blob, tag).
	FailureNotFound
	// FailureDenied: the registry answered 401 or 403: Signet's credentials
	// may not read the repository.
	FailureDenied
	// FailureLimit: the registry exceeded one of Signet's Limits.
	FailureLimit
	// FailureTimeout: the request did not finish within its context's
	// deadline or the transport's timeouts.
	FailureTimeout
	// FailureUnavailable: anything else the registry or network did wrong:
	// 5xx and 429 answers, refused or reset connections, malformed responses.
	FailureUnavailable
)

// Classify tells what err, returned by a registry read through a Client,
// means. Limit errors win over everything else: a hostile registry must
// be reported as such even when the library wrapped the error.
func Classify(err error) Failure {
	if err == nil {
		return FailureNone
	}
	if IsLimit(err) {
		return FailureLimit
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusNotFound:
			return FailureNotFound
		case http.StatusUnauthorized, http.StatusForbidden:
			return FailureDenied
		}
		return FailureUnavailable
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return FailureTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return FailureTimeout
	}
	return FailureUnavailable
}

// IsTransient reports whether err says nothing about the content being
// read: the same read may succeed once the registry or network recovers.
// Not-found, denied and limit errors are not transient.
func IsTransient(err error) bool {
	switch Classify(err) {
	case FailureTimeout, FailureUnavailable:
		return true
	}
	return false
}

// IsNotFound reports whether the registry answered 404.
func IsNotFound(err error) bool { return Classify(err) == FailureNotFound }

// IsDenied reports whether the registry answered 401 or 403.
func IsDenied(err error) bool { return Classify(err) == FailureDenied }
