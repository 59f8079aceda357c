package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

func TestDescribe(t *testing.T) {
	const host, repo, what = "registry.test", "registry.test/app", "the image's referrers"
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"denied, go-containerregistry", &transport.Error{StatusCode: http.StatusForbidden},
			"registry registry.test denied access reading the image's referrers (HTTP 403): give Signet pull access to registry.test/app (on ECR: ecr:BatchGetImage and ecr:GetDownloadUrlForLayer for its role) or add an imagePullSecret"},
		{"denied, oras", fmt.Errorf("fetching: %w", &errcode.ErrorResponse{StatusCode: http.StatusUnauthorized}),
			"registry registry.test denied access reading the image's referrers (HTTP 401): give Signet pull access to registry.test/app (on ECR: ecr:BatchGetImage and ecr:GetDownloadUrlForLayer for its role) or add an imagePullSecret"},
		{"timeout", fmt.Errorf("get: %w", context.DeadlineExceeded),
			"registry registry.test did not answer in time reading the image's referrers"},
		{"server error, oras", &errcode.ErrorResponse{StatusCode: http.StatusBadGateway},
			"registry registry.test answered HTTP 502 Bad Gateway reading the image's referrers"},
		{"server error, go-containerregistry", &transport.Error{StatusCode: http.StatusTooManyRequests},
			"registry registry.test answered HTTP 429 Too Many Requests reading the image's referrers"},
		{"malformed", &MalformedError{errors.New("invalid character 'g' looking for beginning of value")},
			"registry registry.test sent a malformed response reading the image's referrers: invalid character 'g' looking for beginning of value"},
		{"network", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"),
			"registry registry.test unavailable reading the image's referrers: dial tcp 127.0.0.1:1: connect: connection refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Describe(tt.err, host, repo, what); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestClipRespectsUTF8: a cut never splits a character, whatever its width.
func TestClipRespectsUTF8(t *testing.T) {
	if got := Clip("short"); got != "short" {
		t.Fatalf("Clip(short) = %q", got)
	}
	for _, r := range []string{"a", "é", "€", "😀"} {
		for pad := 0; pad < 4; pad++ {
			s := strings.Repeat("x", pad) + strings.Repeat(r, MaxCauseDetail)
			got := Clip(s)
			body := strings.TrimSuffix(got, "…")
			if !utf8.ValidString(got) || len(body) > MaxCauseDetail || len(body) < MaxCauseDetail-utf8.UTFMax+1 || !strings.HasPrefix(s, body) {
				t.Fatalf("Clip of %d×%q after %d bytes: %q (%d bytes) is not a clean cut", MaxCauseDetail, r, pad, got, len(body))
			}
		}
	}
}
