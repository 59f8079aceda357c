package awssigner_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/awsclient"
	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/verify/awssigner"
	"github.com/signet-dev/signet/test/leak"
	"github.com/signet-dev/signet/test/servers/registry"
)

// isolatedAWS points the SDK's default chain at endpoint for service (its
// AWS_ENDPOINT_URL_<SERVICE>) with static test credentials and nothing
// else: no shared config, no instance metadata.
func isolatedAWS(t *testing.T, service, endpoint string) {
	t.Helper()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_" + service: endpoint,
		"AWS_REGION":                  "us-west-2",
		"AWS_ACCESS_KEY_ID":           "AKIDSIGNETTEST",
		"AWS_SECRET_ACCESS_KEY":       "signet-test-secret",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             "/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}
}

// TestRevocationEndpointHangsOrAnswersGarbage: AWS Signer, asked through
// the real SDK client at admission, hangs or answers what is not AWS
// Signer's API. The answer comes within the checker's own timeout, says
// why, and the call leaves no goroutine behind.
func TestRevocationEndpointHangsOrAnswersGarbage(t *testing.T) {
	w := newStaticWorld(t)
	a := attrs(versionARN)
	env, err := w.trusted.Envelope(w.subject, jwsType, a)
	must(t, err)
	w.serve(t, env, jwsType)

	for _, tc := range []struct {
		name   string
		serve  func(t *testing.T) (endpoint string, stop func())
		detail string
		// timeout is the checker's; 0 means 500ms.
		timeout time.Duration
	}{{
		name: "accepts the connection and never answers",
		serve: func(t *testing.T) (string, func()) {
			s, err := registry.NewSilent()
			must(t, err)
			return "http://" + s.Addr(), s.Close
		},
		detail: "no answer in time",
	}, {
		name: "answers HTML with 200",
		serve: func(t *testing.T) (string, func()) {
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				_, _ = w.Write([]byte("<html><body>captive portal</body></html>"))
			}))
			return s.URL, s.Close
		},
		detail: "HTTP 200 that is not an AWS Signer answer",
	}, {
		name: "answers HTML with 502",
		serve: func(t *testing.T) (string, func()) {
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusBadGateway)
				_, _ = w.Write([]byte("<html><body>bad gateway</body></html>"))
			}))
			return s.URL, s.Close
		},
		detail: "HTTP 502 that is not an AWS Signer answer",
		// Long enough for the SDK's two attempts and its backoff between.
		timeout: 2 * time.Second,
	}, {
		name: "answers a JSON body that never ends",
		serve: func(t *testing.T) (string, func()) {
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"revokedEntities":[`))
				for r.Context().Err() == nil {
					if _, err := w.Write([]byte(`"x",`)); err != nil {
						return
					}
				}
			}))
			return s.URL, s.Close
		},
		detail: "no answer in time",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 500 * time.Millisecond
			}
			settled := leak.Check(t)
			endpoint, stop := tc.serve(t)
			isolatedAWS(t, "SIGNER", endpoint)
			cfg, err := awsclient.LoadConfig(context.Background())
			must(t, err)
			checker, err := awssigner.NewRevocationChecker(awssigner.RevocationOptions{Clients: awsclient.NewSignerClients(cfg).ForRegion, Timeout: timeout})
			must(t, err)
			v, err := awssigner.New(awssigner.Options{Profiles: []string{profileARN}, Revocation: awssigner.RevocationEnforce, Roots: w.roots, Registry: oci.New(oci.Options{}), Revocations: checker})
			must(t, err)

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			begin := time.Now()
			got := v.Verify(ctx, policy.Image{Ref: w.ref})
			took := time.Since(begin)
			cancel()
			expect(t, got, policy.ReasonRevocationUnavailable, "could not check revocation with AWS Signer in us-west-2: "+tc.detail, versionARN)
			if took > timeout+time.Second {
				t.Errorf("answered after %s, the checker's timeout is %s", took, timeout)
			}
			stop()
			t.Logf("answered in %s; goroutines settled %s after the server stopped", took.Round(time.Millisecond), settled().Round(time.Millisecond))
		})
	}
}
