package oci

import (
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// MaxCauseDetail bounds how much of a registry's or library's own error
// text reaches a user-facing cause: a hostile registry chooses that text.
const MaxCauseDetail = 200

// MalformedError: the registry answered with something that is not what
// the OCI distribution spec says it must be (a manifest that does not
// parse, an index of the wrong media type).
type MalformedError struct{ Err error }

func (e *MalformedError) Error() string { return "malformed response: " + e.Err.Error() }
func (e *MalformedError) Unwrap() error { return e.Err }

// Describe is the one sentence both verifiers give a user when reading
// from a registry failed (limits aside: a LimitError words itself). err
// comes from go-containerregistry or oras; host is the registry, what the
// object being read ("the image's referrers", "signature tag …"), and
// repository the image's repository, named in the hint for access denied.
func Describe(err error, host, repository, what string) string {
	var me *MalformedError
	if errors.As(err, &me) {
		return fmt.Sprintf("registry %s sent a malformed response reading %s: %s", host, what, Clip(me.Err.Error()))
	}
	switch ClassifyORAS(err) { // ClassifyORAS also knows go-containerregistry's errors
	case FailureDenied:
		return fmt.Sprintf("registry %s denied access reading %s (HTTP %d): give Signet pull access to %s (on ECR: ecr:BatchGetImage and ecr:GetDownloadUrlForLayer for its role) or add an imagePullSecret",
			host, what, StatusCode(err), repository)
	case FailureTimeout:
		return fmt.Sprintf("registry %s did not answer in time reading %s", host, what)
	}
	if code := StatusCode(err); code != 0 {
		return fmt.Sprintf("registry %s answered HTTP %d %s reading %s", host, code, http.StatusText(code), what)
	}
	return fmt.Sprintf("registry %s unavailable reading %s: %s", host, what, Clip(Redact(err)))
}

// StatusCode is the HTTP status a registry answered with, from either
// library's error; 0 when the error carries none.
func StatusCode(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	var er *errcode.ErrorResponse
	if errors.As(err, &er) {
		return er.StatusCode
	}
	return 0
}

// Clip cuts s to at most MaxCauseDetail bytes, marking the cut with "…",
// and never in the middle of a UTF-8 character.
func Clip(s string) string {
	if len(s) <= MaxCauseDetail {
		return s
	}
	cut := MaxCauseDetail
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
