package kms_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/signet-dev/signet/test/servers/kms"
)

const arnPrefix = "arn:aws:kms:us-east-1:123456789012:"

// start runs a server on 127.0.0.1 and returns it, its URL, and the real
// SDK client built as a deployment builds it: LoadDefaultConfig with
// credentials and a base endpoint (here static and local), then NewFromConfig.
func start(t *testing.T) (*kms.Server, string, *awskms.Client) {
	t.Helper()
	srv := kms.New(kms.Options{})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	cfg, err := config.LoadDefaultConfig(t.Context(),
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDSIGNETTEST", "dummy", "")),
		config.WithBaseEndpoint(hs.URL),
		// No shared files: a developer's ~/.aws must not change the test.
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return srv, hs.URL, awskms.NewFromConfig(cfg)
}

func createKey(t *testing.T, c *awskms.Client, spec types.KeySpec) *types.KeyMetadata {
	t.Helper()
	out, err := c.CreateKey(t.Context(), &awskms.CreateKeyInput{
		KeySpec: spec, KeyUsage: types.KeyUsageTypeSignVerify, Description: aws.String("test " + string(spec)),
	})
	if err != nil {
		t.Fatalf("CreateKey %s: %v", spec, err)
	}
	return out.KeyMetadata
}

func createAlias(t *testing.T, c *awskms.Client, name, keyID string) {
	t.Helper()
	if _, err := c.CreateAlias(t.Context(), &awskms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(keyID)}); err != nil {
		t.Fatalf("CreateAlias %s: %v", name, err)
	}
}

var ignoreUnexported = cmpopts.IgnoreUnexported(types.KeyMetadata{}, types.AliasListEntry{})

var rsaAlgorithms = []types.SigningAlgorithmSpec{
	types.SigningAlgorithmSpecRsassaPssSha256, types.SigningAlgorithmSpecRsassaPssSha384, types.SigningAlgorithmSpecRsassaPssSha512,
	types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, types.SigningAlgorithmSpecRsassaPkcs1V15Sha384, types.SigningAlgorithmSpecRsassaPkcs1V15Sha512,
}

// hashOf is the digest each algorithm signs; Go's crypto, not the server,
// is the judge of every signature below.
var hashOf = map[types.SigningAlgorithmSpec]crypto.Hash{
	types.SigningAlgorithmSpecEcdsaSha256: crypto.SHA256, types.SigningAlgorithmSpecEcdsaSha384: crypto.SHA384, types.SigningAlgorithmSpecEcdsaSha512: crypto.SHA512,
	types.SigningAlgorithmSpecRsassaPssSha256: crypto.SHA256, types.SigningAlgorithmSpecRsassaPssSha384: crypto.SHA384, types.SigningAlgorithmSpecRsassaPssSha512: crypto.SHA512,
	types.SigningAlgorithmSpecRsassaPkcs1V15Sha256: crypto.SHA256, types.SigningAlgorithmSpecRsassaPkcs1V15Sha384: crypto.SHA384, types.SigningAlgorithmSpecRsassaPkcs1V15Sha512: crypto.SHA512,
}

func goVerify(pub crypto.PublicKey, alg types.SigningAlgorithmSpec, digest, sig []byte) bool {
	h := hashOf[alg]
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, digest, sig)
	case *rsa.PublicKey:
		if strings.HasPrefix(string(alg), "RSASSA_PSS_") {
			return rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}
		return rsa.VerifyPKCS1v15(k, h, digest, sig) == nil
	}
	return false
}

// describePublicKey names a public key by type and size, for exact comparison.
func describePublicKey(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ecdsa " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa %d", k.N.BitLen())
	}
	return "unknown"
}

func TestEveryKeySpecSignsAndVerifies(t *testing.T) {
	_, _, c := start(t)
	ctx := t.Context()
	msg := []byte("payload to sign")
	for _, tc := range []struct {
		spec       types.KeySpec
		publicKey  string
		algorithms []types.SigningAlgorithmSpec
	}{
		{types.KeySpecEccNistP256, "ecdsa P-256", []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha256}},
		{types.KeySpecEccNistP384, "ecdsa P-384", []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha384}},
		{types.KeySpecEccNistP521, "ecdsa P-521", []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha512}},
		{types.KeySpecRsa2048, "rsa 2048", rsaAlgorithms},
		{types.KeySpecRsa3072, "rsa 3072", rsaAlgorithms},
		{types.KeySpecRsa4096, "rsa 4096", rsaAlgorithms},
	} {
		t.Run(string(tc.spec), func(t *testing.T) {
			before := time.Now().Add(-time.Second)
			md := createKey(t, c, tc.spec)
			want := &types.KeyMetadata{
				KeyId: md.KeyId, Arn: aws.String(arnPrefix + "key/" + *md.KeyId), AWSAccountId: aws.String("123456789012"),
				CreationDate: md.CreationDate, Enabled: true, Description: aws.String("test " + string(tc.spec)),
				KeyState: types.KeyStateEnabled, KeyUsage: types.KeyUsageTypeSignVerify,
				KeySpec: tc.spec, CustomerMasterKeySpec: types.CustomerMasterKeySpec(tc.spec), //nolint:staticcheck // AWS still sends the deprecated twin; so must the server
				SigningAlgorithms: tc.algorithms, KeyManager: types.KeyManagerTypeCustomer, Origin: types.OriginTypeAwsKms,
				MultiRegion: aws.Bool(false),
			}
			if diff := cmp.Diff(want, md, ignoreUnexported); diff != "" {
				t.Errorf("CreateKey metadata (-want +got):\n%s", diff)
			}
			if len(*md.KeyId) != 36 || md.CreationDate.Before(before) || md.CreationDate.After(time.Now()) {
				t.Errorf("KeyId %q (want a UUID), CreationDate %v (want now)", *md.KeyId, md.CreationDate)
			}

			pubOut, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: md.KeyId})
			if err != nil {
				t.Fatal(err)
			}
			if *pubOut.KeyId != *md.Arn || pubOut.KeySpec != tc.spec || pubOut.KeyUsage != types.KeyUsageTypeSignVerify ||
				!cmp.Equal(pubOut.SigningAlgorithms, tc.algorithms) {
				t.Errorf("GetPublicKey = KeyId %s, KeySpec %s, KeyUsage %s, SigningAlgorithms %v", *pubOut.KeyId, pubOut.KeySpec, pubOut.KeyUsage, pubOut.SigningAlgorithms)
			}
			pub, err := x509.ParsePKIXPublicKey(pubOut.PublicKey)
			if err != nil {
				t.Fatalf("PublicKey is not a DER SubjectPublicKeyInfo: %v", err)
			}
			if got := describePublicKey(pub); got != tc.publicKey {
				t.Fatalf("public key is %s, want %s", got, tc.publicKey)
			}

			for _, alg := range tc.algorithms {
				h := hashOf[alg].New()
				h.Write(msg)
				digest := h.Sum(nil)
				for _, m := range []struct {
					typ types.MessageType
					in  []byte
				}{{types.MessageTypeRaw, msg}, {types.MessageTypeDigest, digest}} {
					mt, in := m.typ, m.in
					out, err := c.Sign(ctx, &awskms.SignInput{KeyId: md.KeyId, Message: in, MessageType: mt, SigningAlgorithm: alg})
					if err != nil {
						t.Fatalf("Sign %s %s: %v", alg, mt, err)
					}
					if *out.KeyId != *md.Arn || out.SigningAlgorithm != alg || !goVerify(pub, alg, digest, out.Signature) {
						t.Fatalf("Sign %s %s: KeyId %s, SigningAlgorithm %s, verifies with Go's crypto: %v",
							alg, mt, *out.KeyId, out.SigningAlgorithm, goVerify(pub, alg, digest, out.Signature))
					}
					v, err := c.Verify(ctx, &awskms.VerifyInput{KeyId: md.KeyId, Message: in, MessageType: mt, Signature: out.Signature, SigningAlgorithm: alg})
					if err != nil || !v.SignatureValid || *v.KeyId != *md.Arn || v.SigningAlgorithm != alg {
						t.Fatalf("Verify %s %s of a good signature = %+v, %v", alg, mt, v, err)
					}
					out.Signature[len(out.Signature)/2] ^= 0xff
					_, err = c.Verify(ctx, &awskms.VerifyInput{KeyId: md.KeyId, Message: in, MessageType: mt, Signature: out.Signature, SigningAlgorithm: alg})
					var invalid *types.KMSInvalidSignatureException
					if !errors.As(err, &invalid) {
						t.Fatalf("Verify %s %s of a damaged signature: %v, want KMSInvalidSignatureException", alg, mt, err)
					}
				}
			}
		})
	}
}

func TestAliasesResolveAndRotate(t *testing.T) {
	_, _, c := start(t)
	ctx := t.Context()
	first, second := createKey(t, c, types.KeySpecEccNistP256), createKey(t, c, types.KeySpecEccNistP384)
	createAlias(t, c, "alias/cosign", *first.KeyId)
	createAlias(t, c, "alias/other", *first.Arn) // a key ARN is a valid target too

	// Every way AWS lets a caller name a key.
	resolves := func(wantKeyID string) {
		t.Helper()
		for _, ref := range []string{"alias/cosign", arnPrefix + "alias/cosign"} {
			out, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(ref)})
			if err != nil || *out.KeyMetadata.KeyId != wantKeyID {
				t.Fatalf("DescribeKey(%s) = %v, %v; want key %s", ref, out, err, wantKeyID)
			}
		}
	}
	for _, ref := range []string{*first.KeyId, *first.Arn} {
		out, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(ref)})
		if err != nil || *out.KeyMetadata.KeyId != *first.KeyId {
			t.Fatalf("DescribeKey(%s) = %v, %v", ref, out, err)
		}
	}
	resolves(*first.KeyId)

	// Rotation: re-point the alias; everything that names it follows.
	if _, err := c.UpdateAlias(ctx, &awskms.UpdateAliasInput{AliasName: aws.String("alias/cosign"), TargetKeyId: second.KeyId}); err != nil {
		t.Fatal(err)
	}
	resolves(*second.KeyId)
	pub, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: aws.String("alias/cosign")})
	if err != nil || *pub.KeyId != *second.Arn {
		t.Fatalf("GetPublicKey(alias/cosign) after UpdateAlias = %v, %v; want key %s", pub, err, *second.Arn)
	}

	entry := func(name, keyID string) types.AliasListEntry {
		return types.AliasListEntry{AliasName: aws.String(name), AliasArn: aws.String(arnPrefix + name), TargetKeyId: aws.String(keyID)}
	}
	list := func(in *awskms.ListAliasesInput) []types.AliasListEntry {
		t.Helper()
		var all []types.AliasListEntry
		for p := awskms.NewListAliasesPaginator(c, in); p.HasMorePages(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page.Aliases...)
		}
		return all
	}
	ignoreDates := cmpopts.IgnoreFields(types.AliasListEntry{}, "CreationDate", "LastUpdatedDate")
	for _, tc := range []struct {
		name string
		in   *awskms.ListAliasesInput
		want []types.AliasListEntry
	}{
		{"all", &awskms.ListAliasesInput{}, []types.AliasListEntry{entry("alias/cosign", *second.KeyId), entry("alias/other", *first.KeyId)}},
		{"one page per alias", &awskms.ListAliasesInput{Limit: aws.Int32(1)}, []types.AliasListEntry{entry("alias/cosign", *second.KeyId), entry("alias/other", *first.KeyId)}},
		{"by key", &awskms.ListAliasesInput{KeyId: first.Arn}, []types.AliasListEntry{entry("alias/other", *first.KeyId)}},
	} {
		if diff := cmp.Diff(tc.want, list(tc.in), ignoreUnexported, ignoreDates); diff != "" {
			t.Errorf("ListAliases %s (-want +got):\n%s", tc.name, diff)
		}
	}

	if _, err := c.DeleteAlias(ctx, &awskms.DeleteAliasInput{AliasName: aws.String("alias/other")}); err != nil {
		t.Fatal(err)
	}
	var notFound *types.NotFoundException
	if _, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/other")}); !errors.As(err, &notFound) {
		t.Fatalf("DescribeKey of a deleted alias: %v, want NotFoundException", err)
	}
}

// TestErrorsReachTheSDKAsAWSErrors checks code and message of every error,
// and that the SDK maps modelled ones to its typed errors. KMS models no
// ValidationException or NotAuthorizedException: the SDK surfaces those as
// a generic smithy.APIError, exactly as against AWS.
func TestErrorsReachTheSDKAsAWSErrors(t *testing.T) {
	_, _, c := start(t)
	ctx := t.Context()
	ec := createKey(t, c, types.KeySpecEccNistP256)
	createAlias(t, c, "alias/taken", *ec.KeyId)
	const missingKey = "0b5a3b6e-93d4-4f0e-9d8a-6f6c1c2c3d4e"
	digest256 := make([]byte, 32)

	for _, tc := range []struct {
		name        string
		call        func() error
		typed       any // pointer to the SDK's typed error, nil if unmodelled
		code, msgIs string
	}{
		{
			name: "unknown key ID",
			call: func() error {
				_, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(missingKey)})
				return err
			},
			typed: new(*types.NotFoundException), code: "NotFoundException",
			msgIs: "Key '" + arnPrefix + "key/" + missingKey + "' does not exist",
		},
		{
			name: "unknown alias",
			call: func() error {
				_, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: aws.String("alias/missing")})
				return err
			},
			typed: new(*types.NotFoundException), code: "NotFoundException",
			msgIs: "Alias " + arnPrefix + "alias/missing is not found.",
		},
		{
			name: "key ARN of another region",
			call: func() error {
				_, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("arn:aws:kms:eu-west-1:123456789012:key/" + *ec.KeyId)})
				return err
			},
			typed: new(*types.NotFoundException), code: "NotFoundException",
			msgIs: "Invalid arn arn:aws:kms:eu-west-1:123456789012:key/" + *ec.KeyId,
		},
		{
			name: "alias name without alias/",
			call: func() error {
				_, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("cosign"), TargetKeyId: ec.KeyId})
				return err
			},
			code:  "ValidationException",
			msgIs: `Alias must start with the prefix "alias/". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html`,
		},
		{
			name: "reserved alias/aws/ prefix",
			call: func() error {
				_, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/aws/ecr"), TargetKeyId: ec.KeyId})
				return err
			},
			code: "NotAuthorizedException", msgIs: "Cannot create alias with prefix 'alias/aws/'",
		},
		{
			name: "duplicate alias",
			call: func() error {
				_, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/taken"), TargetKeyId: ec.KeyId})
				return err
			},
			typed: new(*types.AlreadyExistsException), code: "AlreadyExistsException",
			msgIs: "An alias with the name " + arnPrefix + "alias/taken already exists",
		},
		{
			name: "alias pointing at an alias",
			call: func() error {
				_, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/second"), TargetKeyId: aws.String("alias/taken")})
				return err
			},
			code: "ValidationException", msgIs: "Aliases must refer to keys. Not aliases",
		},
		{
			name: "update of a missing alias",
			call: func() error {
				_, err := c.UpdateAlias(ctx, &awskms.UpdateAliasInput{AliasName: aws.String("alias/missing"), TargetKeyId: ec.KeyId})
				return err
			},
			typed: new(*types.NotFoundException), code: "NotFoundException",
			msgIs: "Alias " + arnPrefix + "alias/missing is not found.",
		},
		{
			name: "RSA algorithm on an EC key",
			call: func() error {
				_, err := c.Sign(ctx, &awskms.SignInput{KeyId: ec.KeyId, Message: []byte("m"), SigningAlgorithm: types.SigningAlgorithmSpecRsassaPssSha256})
				return err
			},
			typed: new(*types.InvalidKeyUsageException), code: "InvalidKeyUsageException",
			msgIs: "Signing algorithm RSASSA_PSS_SHA_256 is not supported for key " + *ec.Arn + " with key spec ECC_NIST_P256",
		},
		{
			name: "ECDSA digest of another curve",
			call: func() error {
				_, err := c.Sign(ctx, &awskms.SignInput{KeyId: ec.KeyId, Message: []byte("m"), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha384})
				return err
			},
			typed: new(*types.InvalidKeyUsageException), code: "InvalidKeyUsageException",
			msgIs: "Signing algorithm ECDSA_SHA_384 is not supported for key " + *ec.Arn + " with key spec ECC_NIST_P256",
		},
		{
			name: "DIGEST of the wrong length",
			call: func() error {
				_, err := c.Sign(ctx, &awskms.SignInput{KeyId: ec.KeyId, Message: digest256[:20], MessageType: types.MessageTypeDigest, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
				return err
			},
			code: "ValidationException", msgIs: "Digest is invalid length for algorithm ECDSA_SHA_256.",
		},
		{
			name: "bad signature",
			call: func() error {
				_, err := c.Verify(ctx, &awskms.VerifyInput{KeyId: ec.KeyId, Message: digest256, MessageType: types.MessageTypeDigest, Signature: []byte{0x30, 0x00}, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
				return err
			},
			typed: new(*types.KMSInvalidSignatureException), code: "KMSInvalidSignatureException",
		},
		{
			name: "symmetric key",
			call: func() error {
				_, err := c.CreateKey(ctx, &awskms.CreateKeyInput{})
				return err
			},
			typed: new(*types.UnsupportedOperationException), code: "UnsupportedOperationException",
			msgIs: `the Signet KMS test server creates asymmetric SIGN_VERIFY keys only (ECC_NIST_P256/384/521, RSA_2048/3072/4096), not KeySpec SYMMETRIC_DEFAULT with KeyUsage ""`,
		},
		{
			name: "asymmetric key without KeyUsage",
			call: func() error {
				_, err := c.CreateKey(ctx, &awskms.CreateKeyInput{KeySpec: types.KeySpecRsa2048})
				return err
			},
			code: "ValidationException", msgIs: "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
		},
		{
			name: "unknown key spec",
			call: func() error {
				_, err := c.CreateKey(ctx, &awskms.CreateKeyInput{KeySpec: "ECC_NIST_P999", KeyUsage: types.KeyUsageTypeSignVerify})
				return err
			},
			code:  "ValidationException",
			msgIs: "1 validation error detected: Value 'ECC_NIST_P999' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set",
		},
		{
			name: "operation the server does not implement",
			call: func() error {
				_, err := c.ListKeys(ctx, &awskms.ListKeysInput{})
				return err
			},
			code: "UnknownOperationException", msgIs: `operation "TrentService.ListKeys" is not implemented by the Signet KMS test server`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v is not a smithy.APIError", err)
			}
			if apiErr.ErrorCode() != tc.code || apiErr.ErrorMessage() != tc.msgIs {
				t.Errorf("error = %s %q, want %s %q", apiErr.ErrorCode(), apiErr.ErrorMessage(), tc.code, tc.msgIs)
			}
			if tc.typed != nil && !errors.As(err, tc.typed) {
				t.Errorf("error %T is not the SDK's %T", apiErr, tc.typed)
			}
		})
	}
}

// TestProtocolEdges sends hand-made requests for what the SDK never sends.
func TestProtocolEdges(t *testing.T) {
	_, url, _ := start(t)
	for _, tc := range []struct {
		name, auth, target string
		wantStatus         int
		wantType           string
	}{
		{"unsigned", "", "TrentService.ListAliases", 400, "MissingAuthenticationTokenException"},
		{"unknown target", "AWS4-HMAC-SHA256 Credential=x", "TrentService.Frobnicate", 400, "UnknownOperationException"},
		{"other service", "AWS4-HMAC-SHA256 Credential=x", "AWSSigner.ListSigningProfiles", 400, "UnknownOperationException"},
		{"signed", "AWS4-HMAC-SHA256 Credential=x", "TrentService.ListAliases", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			req.Header.Set("X-Amz-Target", tc.target)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("X-Amzn-ErrorType") != tc.wantType ||
				(tc.wantType != "" && body["__type"] != tc.wantType) {
				t.Fatalf("got %d %q %v, want %d %q", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body, tc.wantStatus, tc.wantType)
			}
		})
	}
}

func TestCallCounts(t *testing.T) {
	srv, url, c := start(t)
	ctx := t.Context()
	k := createKey(t, c, types.KeySpecEccNistP256)
	for range 3 {
		if _, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: k.KeyId}); err != nil {
			t.Fatal(err)
		}
	}
	// Failed calls count too.
	if _, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/missing")}); err == nil {
		t.Fatal("DescribeKey of a missing alias succeeded")
	}

	want := map[string]int{"CreateKey": 1, "GetPublicKey": 3, "DescribeKey": 1}
	if diff := cmp.Diff(want, srv.CallCounts()); diff != "" {
		t.Errorf("CallCounts (-want +got):\n%s", diff)
	}
	if srv.Calls("GetPublicKey") != 3 || srv.Calls("Sign") != 0 {
		t.Errorf("Calls: GetPublicKey %d, Sign %d; want 3, 0", srv.Calls("GetPublicKey"), srv.Calls("Sign"))
	}
	resp, err := http.Get(url + "/_signet/calls")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var overHTTP map[string]int
	if err := json.NewDecoder(resp.Body).Decode(&overHTTP); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, overHTTP); diff != "" {
		t.Errorf("GET /_signet/calls (-want +got):\n%s", diff)
	}
}

// TestConcurrentUse signs through an alias while it is re-pointed, as
// verifications in the webhook race a key rotation; every call must succeed
// and be counted.
func TestConcurrentUse(t *testing.T) {
	srv, _, c := start(t)
	ctx := t.Context()
	keys := []*types.KeyMetadata{createKey(t, c, types.KeySpecEccNistP256), createKey(t, c, types.KeySpecEccNistP256)}
	createAlias(t, c, "alias/rotating", *keys[0].KeyId)
	digest := make([]byte, 32)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if _, err := c.UpdateAlias(ctx, &awskms.UpdateAliasInput{AliasName: aws.String("alias/rotating"), TargetKeyId: keys[i%2].KeyId}); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			_, err := c.Sign(ctx, &awskms.SignInput{KeyId: aws.String("alias/rotating"), Message: digest, MessageType: types.MessageTypeDigest, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if srv.Calls("Sign") != 50 || srv.Calls("UpdateAlias") != 50 {
		t.Errorf("Sign %d, UpdateAlias %d calls; want 50 each", srv.Calls("Sign"), srv.Calls("UpdateAlias"))
	}
}
