package cosign

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/awsclient"
	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/test/leak"
	"github.com/signet-dev/signet/test/servers/registry"
)

// isolatedKMS points the SDK's default chain at endpoint for KMS with
// static test credentials and nothing else.
func isolatedKMS(t *testing.T, endpoint string) {
	t.Helper()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_KMS":        endpoint,
		"AWS_REGION":                  "us-east-1",
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

// TestKMSHangsOrAnswersGarbageAtPolicyLoad: KMS, asked through the real
// SDK client when a policy names a key, hangs or answers what is not KMS's
// API. Building the verifier fails within FetchTimeout, the error says what
// KMS did, and nothing is left running.
func TestKMSHangsOrAnswersGarbageAtPolicyLoad(t *testing.T) {
	const uri = "awskms:///alias/cosign"
	for _, tc := range []struct {
		name  string
		serve func(t *testing.T) (endpoint string, stop func())
		want  string
	}{{
		name: "accepts the connection and never answers",
		serve: func(t *testing.T) (string, func()) {
			s, err := registry.NewSilent()
			if err != nil {
				t.Fatal(err)
			}
			return "http://" + s.Addr(), s.Close
		},
		want: "KMS GetPublicKey for " + uri + ": no answer in time",
	}, {
		name: "answers HTML with 200",
		serve: func(t *testing.T) (string, func()) {
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				_, _ = w.Write([]byte("<html><body>captive portal</body></html>"))
			}))
			return s.URL, s.Close
		},
		want: "KMS GetPublicKey for " + uri + ": HTTP 200 that is not a KMS answer",
	}, {
		name: "answers a key that is not DER",
		serve: func(t *testing.T) (string, func()) {
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/x-amz-json-1.1")
				_, _ = w.Write([]byte(`{"KeyId":"arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab","KeyUsage":"SIGN_VERIFY","PublicKey":"bm90IGEga2V5","SigningAlgorithms":["ECDSA_SHA_256"]}`))
			}))
			return s.URL, s.Close
		},
		want: "KMS key " + uri + ": key arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab: parsing the public key: asn1: structure error: tags don't match (16 vs {class:1 tag:14 length:111 isCompound:true}) {optional:false explicit:false application:false private:false defaultValue:<nil> tag:<nil> stringType:0 timeType:0 set:false omitEmpty:false} publicKeyInfo @2",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			settled := leak.Check(t)
			endpoint, stop := tc.serve(t)
			isolatedKMS(t, endpoint)
			cfg, err := awsclient.LoadConfig(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			const fetchTimeout = 500 * time.Millisecond
			keys := NewKMSKeys(awsclient.NewKMSClients(cfg), KMSKeysOptions{FetchTimeout: fetchTimeout})
			begin := time.Now()
			_, err = NewKMS(context.Background(), keys, uri, Options{Registry: oci.New(oci.Options{})})
			took := time.Since(begin)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error = %v\nwant    %s", err, tc.want)
			}
			if took > fetchTimeout+time.Second {
				t.Errorf("answered after %s, FetchTimeout is %s", took, fetchTimeout)
			}
			stop()
			t.Logf("answered in %s; goroutines settled %s after the server stopped", took.Round(time.Millisecond), settled().Round(time.Millisecond))
		})
	}
}
