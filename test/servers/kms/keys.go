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

	"github.com/google/uuid"
)

// key is one asymmetric KMS key.
type key struct {
	id          string
	arn         string
	spec        string
	description string
	created     time.Time
	signer      crypto.Signer
	algorithms  []string
}

var specs = map[string]struct {
	generate   func() (crypto.Signer, error)
	algorithms []string
}{
	"ECC_NIST_P256": {ecGen(elliptic.P256()), []string{"ECDSA_SHA_256"}},
	"ECC_NIST_P384": {ecGen(elliptic.P384()), []string{"ECDSA_SHA_384"}},
	"ECC_NIST_P521": {ecGen(elliptic.P521()), []string{"ECDSA_SHA_512"}},
	"RSA_2048":      {rsaGen(2048), rsaAlgorithms},
	"RSA_3072":      {rsaGen(3072), rsaAlgorithms},
	"RSA_4096":      {rsaGen(4096), rsaAlgorithms},
}

var rsaAlgorithms = []string{
	"RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
	"RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
}

func ecGen(c elliptic.Curve) func() (crypto.Signer, error) {
	return func() (crypto.Signer, error) { return ecdsa.GenerateKey(c, rand.Reader) }
}

func rsaGen(bits int) func() (crypto.Signer, error) {
	return func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, bits) }
}

// keyMetadata is KMS's KeyMetadata structure.
type keyMetadata struct {
	AWSAccountId          string
	KeyId                 string
	Arn                   string
	CreationDate          float64 // epoch seconds, as the JSON protocol sends timestamps
	Enabled               bool
	Description           string
	KeyUsage              string
	KeyState              string
	Origin                string
	KeyManager            string
	KeySpec               string
	CustomerMasterKeySpec string
	SigningAlgorithms     []string
}

func (s *Server) metadata(k *key) keyMetadata {
	return keyMetadata{
		AWSAccountId: s.account, KeyId: k.id, Arn: k.arn,
		CreationDate: float64(k.created.Unix()), Enabled: true, Description: k.description,
		KeyUsage: "SIGN_VERIFY", KeyState: "Enabled", Origin: "AWS_KMS", KeyManager: "CUSTOMER",
		KeySpec: k.spec, CustomerMasterKeySpec: k.spec, SigningAlgorithms: k.algorithms,
	}
}

func (s *Server) createKey(body []byte) (any, *apiError) {
	var in struct{ KeySpec, KeyUsage, Description string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.KeyUsage != "SIGN_VERIFY" {
		return nil, errorf("ValidationException", "KeyUsage %q is not supported by the test server: only SIGN_VERIFY", in.KeyUsage)
	}
	spec, ok := specs[in.KeySpec]
	if !ok {
		return nil, errorf("ValidationException", "KeySpec %q is not a supported asymmetric signing key spec", in.KeySpec)
	}
	signer, err := spec.generate()
	if err != nil {
		return nil, &apiError{status: 500, code: "KMSInternalException", message: err.Error()}
	}
	id := uuid.NewString()
	k := &key{
		id: id, arn: s.arn("key/" + id), spec: in.KeySpec, description: in.Description,
		created: time.Now(), signer: signer, algorithms: spec.algorithms,
	}
	s.mu.Lock()
	s.keys[id] = k
	s.mu.Unlock()
	return map[string]any{"KeyMetadata": s.metadata(k)}, nil
}

func (s *Server) arn(resource string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:%s", s.region, s.account, resource)
}

// resolve finds a key the way KMS does: key ID, key ARN, alias name or
// alias ARN. ARNs must name this server's region and account.
func (s *Server) resolve(keyID string) (*key, *apiError) {
	if keyID == "" {
		return nil, errorf("ValidationException", "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
	}
	ref := keyID
	if strings.HasPrefix(ref, "arn:") {
		prefix := s.arn("")
		rest, ok := strings.CutPrefix(ref, prefix)
		if !ok {
			return nil, errorf("NotFoundException", "Invalid arn %s", keyID)
		}
		ref = rest
		if id, ok := strings.CutPrefix(ref, "key/"); ok {
			ref = id
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.HasPrefix(ref, "alias/") {
		id, ok := s.aliases[ref]
		if !ok {
			return nil, errorf("NotFoundException", "Alias %s is not found.", s.arn(ref))
		}
		ref = id
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
	der, marshalErr := x509.MarshalPKIXPublicKey(k.signer.Public())
	if marshalErr != nil {
		return nil, &apiError{status: 500, code: "KMSInternalException", message: marshalErr.Error()}
	}
	return map[string]any{
		"KeyId": k.arn, "PublicKey": der, // []byte marshals as base64, as the protocol's blobs
		"KeySpec": k.spec, "CustomerMasterKeySpec": k.spec, "KeyUsage": "SIGN_VERIFY",
		"SigningAlgorithms": k.algorithms,
	}, nil
}

func validAliasName(name string) *apiError {
	if !strings.HasPrefix(name, "alias/") || len(name) <= len("alias/") {
		return errorf("ValidationException", "Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html")
	}
	if strings.HasPrefix(name, "alias/aws/") {
		return errorf("NotAuthorizedException", "Cannot create alias with prefix 'alias/aws/'")
	}
	return nil
}

func (s *Server) createAlias(body []byte) (any, *apiError) { return s.setAlias(body, true) }
func (s *Server) updateAlias(body []byte) (any, *apiError) { return s.setAlias(body, false) }

func (s *Server) setAlias(body []byte, create bool) (any, *apiError) {
	var in struct{ AliasName, TargetKeyId string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := validAliasName(in.AliasName); err != nil {
		return nil, err
	}
	if strings.Contains(in.TargetKeyId, "alias/") {
		return nil, errorf("ValidationException", "Aliases must refer to keys. Not aliases")
	}
	k, err := s.resolve(in.TargetKeyId)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, exists := s.aliases[in.AliasName]
	switch {
	case create && exists:
		return nil, errorf("AlreadyExistsException", "An alias with the name %s already exists", s.arn(in.AliasName))
	case !create && !exists:
		return nil, errorf("NotFoundException", "Alias %s is not found.", s.arn(in.AliasName))
	}
	s.aliases[in.AliasName] = k.id
	return struct{}{}, nil
}

func (s *Server) deleteAlias(body []byte) (any, *apiError) {
	var in struct{ AliasName string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.aliases[in.AliasName]; !ok {
		return nil, errorf("NotFoundException", "Alias %s is not found.", s.arn(in.AliasName))
	}
	delete(s.aliases, in.AliasName)
	return struct{}{}, nil
}

type aliasEntry struct {
	AliasName, AliasArn, TargetKeyId string
}

func (s *Server) listAliases(body []byte) (any, *apiError) {
	var in struct{ KeyId string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var only string
	if in.KeyId != "" {
		k, err := s.resolve(in.KeyId)
		if err != nil {
			return nil, err
		}
		only = k.id
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []aliasEntry{}
	for name, id := range s.aliases {
		if only == "" || id == only {
			out = append(out, aliasEntry{AliasName: name, AliasArn: s.arn(name), TargetKeyId: id})
		}
	}
	slices.SortFunc(out, func(a, b aliasEntry) int { return strings.Compare(a.AliasName, b.AliasName) })
	return map[string]any{"Aliases": out, "Truncated": false}, nil
}
