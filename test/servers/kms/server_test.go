package kms_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	sigkms "github.com/sigstore/sigstore/pkg/signature/kms"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws" // registers awskms://
	"github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/signet-dev/signet/test/servers/kms"
)

// newClient starts a server and returns the real SDK client pointed at it.
func newClient(t *testing.T) (*kms.Server, *awskms.Client, string) {
	t.Helper()
	srv := kms.New(kms.Options{})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	client := awskms.New(awskms.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(hs.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
	return srv, client, hs.URL
}

func createKey(t *testing.T, c *awskms.Client, spec types.KeySpec) *types.KeyMetadata {
	t.Helper()
	out, err := c.CreateKey(context.Background(), &awskms.CreateKeyInput{KeySpec: spec, KeyUsage: types.KeyUsageTypeSignVerify})
	if err != nil {
		t.Fatalf("CreateKey %s: %v", spec, err)
	}
	return out.KeyMetadata
}

func TestSignAndVerifyEveryKeySpec(t *testing.T) {
	_, c, _ := newClient(t)
	ctx := context.Background()
	msg := []byte("payload to sign")
	for _, tc := range []struct {
		spec types.KeySpec
		alg  types.SigningAlgorithmSpec
		hash crypto.Hash
	}{
		{types.KeySpecEccNistP256, types.SigningAlgorithmSpecEcdsaSha256, crypto.SHA256},
		{types.KeySpecEccNistP384, types.SigningAlgorithmSpecEcdsaSha384, crypto.SHA384},
		{types.KeySpecEccNistP521, types.SigningAlgorithmSpecEcdsaSha512, crypto.SHA512},
		{types.KeySpecRsa2048, types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, crypto.SHA256},
		{types.KeySpecRsa3072, types.SigningAlgorithmSpecRsassaPssSha384, crypto.SHA384},
		{types.KeySpecRsa4096, types.SigningAlgorithmSpecRsassaPssSha512, crypto.SHA512},
	} {
		t.Run(string(tc.spec), func(t *testing.T) {
			md := createKey(t, c, tc.spec)
			if md.KeySpec != tc.spec || md.KeyState != types.KeyStateEnabled || !strings.HasPrefix(*md.Arn, "arn:aws:kms:us-east-1:123456789012:key/") {
				t.Fatalf("metadata %+v", md)
			}
			pubOut, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: md.KeyId})
			if err != nil {
				t.Fatal(err)
			}
			pub, err := x509.ParsePKIXPublicKey(pubOut.PublicKey)
			if err != nil {
				t.Fatalf("public key does not parse: %v", err)
			}
			h := tc.hash.New()
			h.Write(msg)
			digest := h.Sum(nil)
			for _, mt := range []types.MessageType{types.MessageTypeRaw, types.MessageTypeDigest} {
				in := msg
				if mt == types.MessageTypeDigest {
					in = digest
				}
				sig, err := c.Sign(ctx, &awskms.SignInput{KeyId: md.KeyId, Message: in, MessageType: mt, SigningAlgorithm: tc.alg})
				if err != nil {
					t.Fatalf("Sign %s: %v", mt, err)
				}
				// Go's crypto, not the server, judges the signature.
				var ok bool
				switch k := pub.(type) {
				case *ecdsa.PublicKey:
					ok = ecdsa.VerifyASN1(k, digest, sig.Signature)
				case *rsa.PublicKey:
					if strings.Contains(string(tc.alg), "PSS") {
						ok = rsa.VerifyPSS(k, tc.hash, digest, sig.Signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
					} else {
						ok = rsa.VerifyPKCS1v15(k, tc.hash, digest, sig.Signature) == nil
					}
				}
				if !ok {
					t.Fatalf("%s signature does not verify with Go's crypto", mt)
				}
				v, err := c.Verify(ctx, &awskms.VerifyInput{KeyId: md.KeyId, Message: in, MessageType: mt, Signature: sig.Signature, SigningAlgorithm: tc.alg})
				if err != nil || !v.SignatureValid {
					t.Fatalf("KMS Verify = %v, %v", v, err)
				}
			}
			bad := make([]byte, 64)
			_, err = c.Verify(ctx, &awskms.VerifyInput{KeyId: md.KeyId, Message: msg, Signature: bad, SigningAlgorithm: tc.alg})
			var invalid *types.KMSInvalidSignatureException
			if !errors.As(err, &invalid) {
				t.Fatalf("Verify of a bad signature: %v, want KMSInvalidSignatureException", err)
			}
		})
	}
}

func TestKeyReferencesResolveAsInAWS(t *testing.T) {
	_, c, _ := newClient(t)
	ctx := context.Background()
	first, second := createKey(t, c, types.KeySpecEccNistP256), createKey(t, c, types.KeySpecEccNistP384)
	if _, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/cosign"), TargetKeyId: first.KeyId}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{*first.KeyId, *first.Arn, "alias/cosign", "arn:aws:kms:us-east-1:123456789012:alias/cosign"} {
		out, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(ref)})
		if err != nil || *out.KeyMetadata.KeyId != *first.KeyId {
			t.Fatalf("DescribeKey(%s) = %v, %v", ref, out, err)
		}
	}
	// Re-point the alias, as a key rotation does.
	if _, err := c.UpdateAlias(ctx, &awskms.UpdateAliasInput{AliasName: aws.String("alias/cosign"), TargetKeyId: second.Arn}); err != nil {
		t.Fatal(err)
	}
	pub, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: aws.String("alias/cosign")})
	if err != nil || *pub.KeyId != *second.Arn || pub.KeySpec != types.KeySpecEccNistP384 {
		t.Fatalf("after UpdateAlias: %v, %v", pub, err)
	}
	list, err := c.ListAliases(ctx, &awskms.ListAliasesInput{})
	if err != nil || len(list.Aliases) != 1 || *list.Aliases[0].AliasArn != "arn:aws:kms:us-east-1:123456789012:alias/cosign" || *list.Aliases[0].TargetKeyId != *second.KeyId {
		t.Fatalf("ListAliases = %+v, %v", list, err)
	}
}

func TestErrorsAreTheSDKsTypedErrors(t *testing.T) {
	_, c, _ := newClient(t)
	ctx := context.Background()
	k := createKey(t, c, types.KeySpecEccNistP256)
	var notFound *types.NotFoundException
	_, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: aws.String("alias/missing")})
	if !errors.As(err, &notFound) || *notFound.Message != "Alias arn:aws:kms:us-east-1:123456789012:alias/missing is not found." {
		t.Fatalf("missing alias: %v", err)
	}
	_, err = c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("arn:aws:kms:eu-west-1:123456789012:key/" + *k.KeyId)})
	if !errors.As(err, &notFound) {
		t.Fatalf("key ARN of another region: %v, want NotFoundException", err)
	}
	// KMS has no modelled ValidationException: the SDK gives a generic API error.
	var apiErr smithy.APIError
	_, err = c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("cosign"), TargetKeyId: k.KeyId})
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ValidationException" {
		t.Fatalf("alias without prefix: %v, want ValidationException", err)
	}
	var exists *types.AlreadyExistsException
	c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/a"), TargetKeyId: k.KeyId})
	_, err = c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/a"), TargetKeyId: k.KeyId})
	if !errors.As(err, &exists) {
		t.Fatalf("duplicate alias: %v, want AlreadyExistsException", err)
	}
	var usage *types.InvalidKeyUsageException
	_, err = c.Sign(ctx, &awskms.SignInput{KeyId: k.KeyId, Message: []byte("m"), SigningAlgorithm: types.SigningAlgorithmSpecRsassaPssSha256})
	if !errors.As(err, &usage) {
		t.Fatalf("RSA algorithm on an EC key: %v, want InvalidKeyUsageException", err)
	}
}

func TestUnsignedRequestsAreRejected(t *testing.T) {
	_, _, url := newClient(t)
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
	req.Header.Set("X-Amz-Target", "TrentService.ListAliases")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("X-Amzn-ErrorType") != "MissingAuthenticationTokenException" {
		t.Fatalf("unsigned request: %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}
}

// TestSigstoreAWSKMSProvider drives the server through the provider cosign
// uses for --key awskms://, configured only by the SDK's environment.
func TestSigstoreAWSKMSProvider(t *testing.T) {
	srv, c, url := newClient(t)
	t.Setenv("AWS_ENDPOINT_URL_KMS", url)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	ctx := context.Background()
	k := createKey(t, c, types.KeySpecEccNistP256)
	if _, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/cosign"), TargetKeyId: k.KeyId}); err != nil {
		t.Fatal(err)
	}
	sv, err := sigkms.Get(ctx, "awskms:///alias/cosign", crypto.SHA256)
	if err != nil {
		t.Fatalf("sigstore awskms provider: %v", err)
	}
	msg := []byte("cosign payload")
	sig, err := sv.SignMessage(strings.NewReader(string(msg)), options.WithContext(ctx))
	if err != nil {
		t.Fatalf("SignMessage: %v", err)
	}
	pub, err := sv.PublicKey(options.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(msg)
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d[:], sig) {
		t.Fatal("signature from the provider does not verify with the public key")
	}
	if srv.Calls("Sign") != 1 {
		t.Fatalf("Sign calls = %d, want 1", srv.Calls("Sign"))
	}
}
