package kms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/uuid"
)

// key is one asymmetric SIGN_VERIFY key. It never changes once created.
type key struct {
	id, arn     string
	spec        string
	description string
	created     time.Time
	signer      crypto.Signer
}

// keySpec is a key spec the server can create.
type keySpec struct {
	generate func() (crypto.Signer, error)
	// algorithms in the order AWS lists them. The order matters: the
	// sigstore awskms provider signs with SigningAlgorithms[0], so an RSA
	// key signs RSASSA_PSS_SHA_256 there, as against real KMS.
	algorithms []string
}

var rsaAlgorithms = []string{
	"RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
	"RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
}

var keySpecs = map[string]keySpec{
	"ECC_NIST_P256": {ecGen(elliptic.P256()), []string{"ECDSA_SHA_256"}},
	"ECC_NIST_P384": {ecGen(elliptic.P384()), []string{"ECDSA_SHA_384"}},
	"ECC_NIST_P521": {ecGen(elliptic.P521()), []string{"ECDSA_SHA_512"}},
	"RSA_2048":      {rsaGen(2048), rsaAlgorithms},
	"RSA_3072":      {rsaGen(3072), rsaAlgorithms},
	"RSA_4096":      {rsaGen(4096), rsaAlgorithms},
}

func ecGen(c elliptic.Curve) func() (crypto.Signer, error) {
	return func() (crypto.Signer, error) { return ecdsa.GenerateKey(c, rand.Reader) }
}

func rsaGen(bits int) func() (crypto.Signer, error) {
	return func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, bits) }
}

// keyMetadata is KMS's KeyMetadata structure; field names are the wire names.
type keyMetadata struct {
	AWSAccountId          string
	KeyId                 string
	Arn                   string
	CreationDate          float64
	Enabled               bool
	Description           string
	KeyUsage              string
	KeyState              string
	Origin                string
	KeyManager            string
	KeySpec               string
	CustomerMasterKeySpec string // deprecated twin of KeySpec, still sent by AWS
	SigningAlgorithms     []string
	MultiRegion           bool
}

func (s *Server) metadata(k *key) keyMetadata {
	return keyMetadata{
		AWSAccountId: s.account, KeyId: k.id, Arn: k.arn,
		CreationDate: epoch(k.created), Enabled: true, Description: k.description,
		KeyUsage: "SIGN_VERIFY", KeyState: "Enabled", Origin: "AWS_KMS", KeyManager: "CUSTOMER",
		KeySpec: k.spec, CustomerMasterKeySpec: k.spec, SigningAlgorithms: keySpecs[k.spec].algorithms,
	}
}

func (s *Server) arn(resource string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:%s", s.region, s.account, resource)
}

func (s *Server) createKey(body []byte) (any, *apiError) {
	var in struct {
		KeySpec, CustomerMasterKeySpec, KeyUsage, Description string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	// The sigstore provider (cosign generate-key-pair --kms) still sends the
	// deprecated CustomerMasterKeySpec; AWS accepts either, not both.
	spec := in.KeySpec
	switch {
	case in.KeySpec != "" && in.CustomerMasterKeySpec != "":
		return nil, errorf("ValidationException", "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec parameter is deprecated. Use KeySpec only")
	case spec == "":
		spec = in.CustomerMasterKeySpec
	}
	if spec == "" {
		spec = string(types.KeySpecSymmetricDefault) // AWS's default
	}
	if !slices.Contains(types.KeySpec("").Values(), types.KeySpec(spec)) {
		return nil, errorf("ValidationException", "1 validation error detected: Value '%s' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set", spec)
	}
	if in.KeyUsage == "" && spec != string(types.KeySpecSymmetricDefault) {
		return nil, errorf("ValidationException", "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.")
	}
	gen, ok := keySpecs[spec]
	if !ok || in.KeyUsage != "SIGN_VERIFY" {
		// Valid in AWS, outside what a signature test server needs: say so
		// plainly rather than pretend.
		return nil, errorf("UnsupportedOperationException", "the Signet KMS test server creates asymmetric SIGN_VERIFY keys only (ECC_NIST_P256/384/521, RSA_2048/3072/4096), not KeySpec %s with KeyUsage %q", spec, in.KeyUsage)
	}
	signer, err := gen.generate()
	if err != nil {
		return nil, internalError(err)
	}
	id := uuid.NewString()
	k := &key{id: id, arn: s.arn("key/" + id), spec: spec, description: in.Description, created: time.Now(), signer: signer}
	s.mu.Lock()
	s.keys[id] = k
	s.mu.Unlock()
	return map[string]any{"KeyMetadata": s.metadata(k)}, nil
}

// resolve finds a key the way KMS does, from a key ID, key ARN, alias name
// or alias ARN. ARNs must name this server's region and account.
func (s *Server) resolve(keyID string) (*key, *apiError) {
	if keyID == "" {
		return nil, required("keyId")
	}
	ref := keyID
	if strings.HasPrefix(ref, "arn:") {
		rest, ok := strings.CutPrefix(ref, s.arn(""))
		if !ok {
			return nil, errorf("NotFoundException", "Invalid arn %s", keyID)
		}
		ref = strings.TrimPrefix(rest, "key/")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.HasPrefix(ref, "alias/") {
		a, ok := s.aliases[ref]
		if !ok {
			return nil, errorf("NotFoundException", "Alias %s is not found.", s.arn(ref))
		}
		ref = a.target
	}
	k, ok := s.keys[ref]
	if !ok {
		return nil, errorf("NotFoundException", "Key '%s' does not exist", s.arn("key/"+ref))
	}
	return k, nil
}

func (s *Server) describeKey(body []byte) (any, *apiError) {
	var in struct{ KeyId string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.resolve(in.KeyId)
	if err != nil {
		return nil, err
	}
	return map[string]any{"KeyMetadata": s.metadata(k)}, nil
}

func (s *Server) getPublicKey(body []byte) (any, *apiError) {
	var in struct{ KeyId string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.resolve(in.KeyId)
	if err != nil {
		return nil, err
	}
	// DER SubjectPublicKeyInfo; encoding/json sends []byte as base64, which
	// is how the protocol sends blobs.
	der, marshalErr := x509.MarshalPKIXPublicKey(k.signer.Public())
	if marshalErr != nil {
		return nil, internalError(marshalErr)
	}
	return map[string]any{
		"KeyId": k.arn, "PublicKey": der,
		"KeySpec": k.spec, "CustomerMasterKeySpec": k.spec, "KeyUsage": "SIGN_VERIFY",
		"SigningAlgorithms": keySpecs[k.spec].algorithms,
	}, nil
}
