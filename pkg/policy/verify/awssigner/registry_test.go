package awssigner_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/verify/awssigner"
)

// TestRegistryFailures: a registry that fails is told apart from "not
// signed", and named.
func TestRegistryFailures(t *testing.T) {
	f := setup(t)
	v := f.verifier(t, f.checker(t, 0), awssigner.RevocationEnforce, profileARN)
	digest := "sha256:" + strings.Repeat("cd", 32)

	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		reason  policy.Reason
		cause   string // %s is the registry host
	}{{
		name:    "500",
		handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) },
		reason:  policy.ReasonRegistryUnavailable,
		cause:   "registry %s answered HTTP 500 Internal Server Error reading the image manifest",
	}, {
		name:    "denied",
		handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) },
		reason:  policy.ReasonRegistryUnavailable,
		cause:   "registry %s denied access reading the image manifest (HTTP 403): give Signet pull access to %s/app (on ECR: ecr:BatchGetImage and ecr:GetDownloadUrlForLayer for its role) or add an imagePullSecret",
	}, {
		name: "referrers fail",
		handler: func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
				w.Header().Set("Docker-Content-Digest", digest)
				w.Header().Set("Content-Length", strconv.Itoa(100))
				return
			}
			w.WriteHeader(http.StatusBadGateway)
		},
		reason: policy.ReasonRegistryUnavailable,
		cause:  "registry %s answered HTTP 502 Bad Gateway reading the image's referrers",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			host := strings.TrimPrefix(srv.URL, "http://")
			ref, err := name.NewDigest(host + "/app@" + digest)
			if err != nil {
				t.Fatal(err)
			}
			got := verify(t, v, ref)
			expect(t, got, tc.reason, strings.ReplaceAll(tc.cause, "%s", host), "")
			if !got.Transient() {
				t.Error("a registry failure must be transient")
			}
		})
	}

	t.Run("deadline", func(t *testing.T) {
		ref, _ := f.image(t, f.stack.ReferrersRegistry)
		f.sign(t, ref, f.commercial, jwsType, attrs(versionARN), referrersAPI)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		got := v.Verify(ctx, policy.Image{Ref: ref})
		expect(t, got, policy.ReasonTimeout, "verification did not finish within the deadline", "")
	})
}
