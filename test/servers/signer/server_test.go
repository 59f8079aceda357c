package signer_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	"github.com/aws/smithy-go"

	"github.com/signet-dev/signet/internal/awsclient"
	signertest "github.com/signet-dev/signet/test/servers/signer"
)

const (
	version = "arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod/Abc123XyZ0"
	job     = "arn:aws:signer:us-west-2:111122223333:/signing-jobs/6a0c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"
)

var (
	hashA = strings.Repeat("a", 96) + strings.Repeat("b", 96)
	hashB = strings.Repeat("b", 96) + strings.Repeat("b", 96)
)

// awsEnv gives the SDK's default chain a region and dummy credentials, and
// nothing from the host.
func awsEnv(t *testing.T) {
	for k, v := range map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIASIGNETTEST000000", "AWS_SECRET_ACCESS_KEY": "test",
		"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_SIGNER": "",
	} {
		t.Setenv(k, v)
	}
}

// start serves s and returns Signet's Signer clients, pointed at it through
// AWS_ENDPOINT_URL_SIGNER.
func start(t *testing.T, s *signertest.Server) (*awsclient.SignerClients, string) {
	t.Helper()
	awsEnv(t)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL_SIGNER", srv.URL)
	cfg, err := awsclient.LoadConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return awsclient.NewSignerClients(cfg), srv.URL
}

func input(hashes ...string) *signer.GetRevocationStatusInput {
	return &signer.GetRevocationStatusInput{
		ProfileVersionArn:  aws.String(version),
		JobArn:             aws.String(job),
		PlatformId:         aws.String(signertest.Platform),
		SignatureTimestamp: aws.Time(time.Date(2026, 11, 20, 10, 30, 5, 0, time.UTC)),
		CertificateHashes:  hashes,
	}
}

// TestGetRevocationStatus drives the server with the real SDK client.
func TestGetRevocationStatus(t *testing.T) {
	s := signertest.New()
	clients, endpoint := start(t, s)
	client := clients.ForRegion("us-west-2")
	ctx := context.Background()

	out, err := client.GetRevocationStatus(ctx, input(hashA, hashB))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.RevokedEntities) != 0 {
		t.Errorf("revoked %q, want nothing", out.RevokedEntities)
	}
	u, _ := url.Parse(endpoint)
	got := s.Requests()[0]
	want := signertest.Request{
		Host: u.Host, Region: "us-west-2", Service: "signer",
		ProfileVersionARN: version, JobARN: job, PlatformID: signertest.Platform,
		SignatureTimestamp: time.Date(2026, 11, 20, 10, 30, 5, 0, time.UTC),
		CertificateHashes:  []string{hashA, hashB},
	}
	if got.Host != want.Host || got.Region != want.Region || got.Service != want.Service || got.ProfileVersionARN != want.ProfileVersionARN ||
		got.JobARN != want.JobARN || got.PlatformID != want.PlatformID || !got.SignatureTimestamp.Equal(want.SignatureTimestamp) ||
		!slices.Equal(got.CertificateHashes, want.CertificateHashes) {
		t.Errorf("request = %+v\nwant      %+v", got, want)
	}

	s.RevokeJob(job)
	s.RevokeProfileVersion(version, time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC))
	s.RevokeCertificate(hashB)
	out, err = client.GetRevocationStatus(ctx, input(hashA, hashB))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{version, job, hashB}; !slices.Equal(out.RevokedEntities, want) {
		t.Errorf("revoked %q, want %q", out.RevokedEntities, want)
	}

	// A profile version revoked from a time on keeps older signatures valid.
	s2 := signertest.New()
	clients2, _ := start(t, s2)
	s2.RevokeProfileVersion(version, time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC))
	out, err = clients2.ForRegion("us-west-2").GetRevocationStatus(ctx, input(hashA))
	if err != nil || len(out.RevokedEntities) != 0 {
		t.Errorf("revoked %v, %v; want nothing", out, err)
	}
	if n := s.Calls(); n != 2 {
		t.Errorf("Calls() = %d, want 2", n)
	}
}

// TestFaults: injected statuses reach the SDK as AWS errors (retried once
// by Signet's retryer), and a delay as a timeout.
func TestFaults(t *testing.T) {
	s := signertest.New()
	clients, _ := start(t, s)
	client := clients.ForRegion("us-west-2")

	s.FailWith(http.StatusServiceUnavailable, "ServiceUnavailableException")
	_, err := client.GetRevocationStatus(context.Background(), input(hashA))
	var re *awshttp.ResponseError
	var ae smithy.APIError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusServiceUnavailable || !errors.As(err, &ae) || ae.ErrorCode() != "ServiceUnavailableException" {
		t.Errorf("error = %v, want HTTP 503 ServiceUnavailableException", err)
	}
	if n := s.Calls(); n != awsclient.MaxAttempts {
		t.Errorf("%d calls, want %d (the retryer's attempts)", n, awsclient.MaxAttempts)
	}

	s.Heal()
	s.Delay(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = client.GetRevocationStatus(ctx, input(hashA))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("error = %v after %v, want a deadline error soon", err, time.Since(start))
	}
}

// recorder is an HTTP client that records request hosts and sends nothing.
type recorder struct {
	mu    sync.Mutex
	hosts []string
}

var errRecorded = errors.New("recorded, not sent")

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hosts = append(r.hosts, req.URL.Host)
	return nil, errRecorded
}

// TestEndpointHostPrefix shows why awsclient disables the SDK's endpoint
// host prefix for GetRevocationStatus exactly when an endpoint is
// configured: the SDK would send to data-<configured host>.
func TestEndpointHostPrefix(t *testing.T) {
	awsEnv(t)
	for _, tc := range []struct {
		name     string
		endpoint string
		client   func(aws.Config) awsclient.Signer
		want     string
	}{
		{"SDK default, custom endpoint", "http://127.0.0.1:4566", func(c aws.Config) awsclient.Signer { return signer.NewFromConfig(c) }, "data-127.0.0.1:4566"},
		{"Signet, custom endpoint", "http://127.0.0.1:4566", func(c aws.Config) awsclient.Signer { return awsclient.NewSignerClient(c) }, "127.0.0.1:4566"},
		{"Signet, AWS endpoint", "", func(c aws.Config) awsclient.Signer { return awsclient.NewSignerClient(c) }, "data-signer.us-west-2.amazonaws.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_ENDPOINT_URL_SIGNER", tc.endpoint)
			rec := &recorder{}
			cfg, err := awsclient.LoadConfig(context.Background(), config.WithRegion("us-west-2"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.HTTPClient = rec
			_, err = tc.client(cfg).GetRevocationStatus(context.Background(), input(hashA))
			if !errors.Is(err, errRecorded) {
				t.Fatalf("error = %v", err)
			}
			if len(rec.hosts) == 0 || rec.hosts[0] != tc.want {
				t.Errorf("hosts %q, want %q", rec.hosts, tc.want)
			}
		})
	}
}
