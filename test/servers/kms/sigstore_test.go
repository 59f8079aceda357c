package kms_test

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-cmp/cmp"
	sigkms "github.com/sigstore/sigstore/pkg/signature/kms"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws" // registers awskms://
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// TestSigstoreAWSKMSProvider drives the server through the provider cosign
// uses for --key awskms://..., configured only by the SDK's environment as
// in the local stack. The call counts pin down what the provider asks KMS.
func TestSigstoreAWSKMSProvider(t *testing.T) {
	for _, tc := range []struct {
		name string
		// spec of a key made beforehand; empty: the provider's CreateKey
		// makes it (sending the deprecated CustomerMasterKeySpec).
		spec      types.KeySpec
		wantCalls map[string]int
	}{
		{"ECDSA P-256", types.KeySpecEccNistP256, map[string]int{"GetPublicKey": 1, "DescribeKey": 1, "Sign": 1, "Verify": 1}},
		// RSA keys sign with SigningAlgorithms[0], RSASSA_PSS_SHA_256.
		{"RSA 2048", types.KeySpecRsa2048, map[string]int{"GetPublicKey": 1, "DescribeKey": 1, "Sign": 1, "Verify": 1}},
		{"created by the provider", "", map[string]int{"GetPublicKey": 2, "DescribeKey": 1, "CreateKey": 1, "CreateAlias": 1, "Sign": 1, "Verify": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, url, c := start(t)
			for k, v := range map[string]string{
				"AWS_ENDPOINT_URL_KMS": url, "AWS_REGION": "us-east-1",
				"AWS_ACCESS_KEY_ID": "AKIDSIGNETTEST", "AWS_SECRET_ACCESS_KEY": "dummy",
				"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_EC2_METADATA_DISABLED": "true",
			} {
				t.Setenv(k, v)
			}
			ctx := t.Context()
			before := map[string]int{}
			if tc.spec != "" {
				createAlias(t, c, "alias/cosign", *createKey(t, c, tc.spec).KeyId)
				before = srv.CallCounts()
			}
			sv, err := sigkms.Get(ctx, "awskms:///alias/cosign", crypto.SHA256)
			if err != nil {
				t.Fatalf("sigstore awskms provider: %v", err)
			}
			if tc.spec == "" {
				if _, err := sv.CreateKey(ctx, string(types.CustomerMasterKeySpecEccNistP256)); err != nil {
					t.Fatalf("provider CreateKey: %v", err)
				}
			}

			msg := "cosign payload"
			sig, err := sv.SignMessage(strings.NewReader(msg), options.WithContext(ctx))
			if err != nil {
				t.Fatalf("SignMessage: %v", err)
			}
			if err := sv.VerifySignature(bytes.NewReader(sig), strings.NewReader(msg), options.WithContext(ctx)); err != nil {
				t.Errorf("VerifySignature (local): %v", err)
			}
			if err := sv.VerifySignature(bytes.NewReader(sig), strings.NewReader(msg), options.WithContext(ctx), options.WithRemoteVerification(true)); err != nil {
				t.Errorf("VerifySignature (KMS Verify): %v", err)
			}
			pub, err := sv.PublicKey(options.WithContext(ctx))
			if err != nil {
				t.Fatal(err)
			}
			alg := types.SigningAlgorithmSpecEcdsaSha256
			if _, ok := pub.(*rsa.PublicKey); ok {
				alg = types.SigningAlgorithmSpecRsassaPssSha256
			}
			digest := sha256.Sum256([]byte(msg))
			if !goVerify(pub, alg, digest[:], sig) {
				t.Errorf("the provider's signature does not verify as %s with its public key", alg)
			}

			got := srv.CallCounts()
			for op, n := range before {
				if got[op] -= n; got[op] == 0 {
					delete(got, op)
				}
			}
			if diff := cmp.Diff(tc.wantCalls, got); diff != "" {
				t.Errorf("KMS calls by the provider (-want +got):\n%s", diff)
			}
		})
	}
}
