package awsclient_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/signer"

	"github.com/signet-dev/signet/internal/awsclient"
	"github.com/signet-dev/signet/test/servers/kms"
	signertest "github.com/signet-dev/signet/test/servers/signer"
)

// TestObserverSeesEveryCall runs the real SDK clients, built from
// LoadConfig as the webhook builds them (endpoints from
// AWS_ENDPOINT_URL_<SERVICE>), against the KMS and Signer test servers on
// 127.0.0.1: each client call is reported once, retries included, with
// the AWS error code when AWS answered with one.
func TestObserverSeesEveryCall(t *testing.T) {
	kmsSrv := httptest.NewServer(kms.New(kms.Options{}))
	defer kmsSrv.Close()
	signerSrv := signertest.New()
	signerHTTP := httptest.NewServer(signerSrv)
	defer signerHTTP.Close()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_KMS": kmsSrv.URL, "AWS_ENDPOINT_URL_SIGNER": signerHTTP.URL, "AWS_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": "AKIDSIGNETTEST", "AWS_SECRET_ACCESS_KEY": "dummy", "AWS_SESSION_TOKEN": "",
		"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_PROFILE": "",
	} {
		t.Setenv(k, v)
	}

	var mu sync.Mutex
	var calls []string
	cfg, err := awsclient.LoadConfig(t.Context(), awsclient.WithObserver(func(c awsclient.Call) {
		mu.Lock()
		defer mu.Unlock()
		if c.Duration <= 0 {
			t.Errorf("%s %s: duration %s", c.Service, c.Operation, c.Duration)
		}
		calls = append(calls, fmt.Sprintf("%s %s %s", c.Service, c.Operation, c.Result))
	}))
	if err != nil {
		t.Fatal(err)
	}
	take := func() string {
		mu.Lock()
		defer mu.Unlock()
		s := strings.Join(calls, "\n")
		calls = nil
		return s
	}
	check := func(want ...string) {
		t.Helper()
		if got := take(); got != strings.Join(want, "\n") {
			t.Errorf("observed\n%s\nwant\n%s", got, strings.Join(want, "\n"))
		}
	}

	// KMS: a key made with the SDK client, read through Signet's client set.
	admin := awskms.NewFromConfig(cfg)
	key, err := admin.CreateKey(t.Context(), &awskms.CreateKeyInput{KeySpec: kmstypes.KeySpecEccNistP256, KeyUsage: kmstypes.KeyUsageTypeSignVerify})
	if err != nil {
		t.Fatal(err)
	}
	keys := awsclient.NewKMSClients(cfg).ForRegion("")
	if _, err := keys.GetPublicKey(t.Context(), &awskms.GetPublicKeyInput{KeyId: key.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.GetPublicKey(t.Context(), &awskms.GetPublicKeyInput{KeyId: aws.String("alias/missing")}); err == nil {
		t.Fatal("GetPublicKey of a missing alias succeeded")
	}
	check("KMS CreateKey success", "KMS GetPublicKey success", "KMS GetPublicKey NotFoundException")

	// Signer: NewSignerClient adds its own middleware; both must run.
	sc := awsclient.NewSignerClients(cfg).ForRegion("")
	in := &signer.GetRevocationStatusInput{
		ProfileVersionArn:  aws.String("arn:aws:signer:us-east-1:123456789012:/signing-profiles/P/abc"),
		JobArn:             aws.String("arn:aws:signer:us-east-1:123456789012:/signing-jobs/j"),
		PlatformId:         aws.String(signertest.Platform),
		SignatureTimestamp: aws.Time(time.Now()),
		CertificateHashes:  []string{strings.Repeat("ab", 96)},
	}
	if _, err := sc.GetRevocationStatus(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	signerSrv.FailWith(http.StatusInternalServerError, "InternalServiceErrorException")
	before := signerSrv.Calls()
	if _, err := sc.GetRevocationStatus(t.Context(), in); err == nil {
		t.Fatal("GetRevocationStatus succeeded against a failing server")
	}
	if n := signerSrv.Calls() - before; n != awsclient.MaxAttempts {
		t.Errorf("%d attempts, want %d (retried)", n, awsclient.MaxAttempts)
	}
	check("signer GetRevocationStatus success", "signer GetRevocationStatus InternalServiceErrorException")

	// No answer at all: a closed endpoint.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	_, err = awskms.NewFromConfig(cfg, func(o *awskms.Options) { o.BaseEndpoint = aws.String(down.URL) }).
		GetPublicKey(t.Context(), &awskms.GetPublicKeyInput{KeyId: key.KeyMetadata.KeyId})
	if err == nil {
		t.Fatal("GetPublicKey from a closed endpoint succeeded")
	}
	check("KMS GetPublicKey error")
}
