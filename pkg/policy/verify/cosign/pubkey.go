package cosign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// publicKey is a loaded verification key: the sigstore verifiers for every
// signature scheme the key is trusted with, and its fingerprint.
type publicKey struct {
	// verifier tries each scheme in order (see multiVerifier).
	verifier signature.Verifier
	// fingerprint is "SHA256:<hex>" of the key's DER SubjectPublicKeyInfo.
	fingerprint string
	// schemes name the accepted schemes, e.g. "ECDSA_SHA_384".
	schemes []string
	// keyARN is the KMS key behind the URI (for aliases, the current target).
	keyARN string
}

// short is the fingerprint cut to 16 hex digits, for messages.
func (k *publicKey) short() string {
	if len(k.fingerprint) > len("SHA256:")+16 {
		return k.fingerprint[:len("SHA256:")+16]
	}
	return k.fingerprint
}

// keyFromKMS builds the key from GetPublicKey's answer. The schemes are the
// key's SigningAlgorithms, the first one first: sigstore's awskms signer
// (what `cosign sign --key awskms://` runs) signs with SigningAlgorithms[0]
// and hashes with that algorithm's digest (ECDSA P-384 → SHA-384), so that is
// the verifier that normally matches. The others are schemes KMS itself
// would sign with this key, so accepting them trusts nothing more.
func keyFromKMS(der []byte, usage kmstypes.KeyUsageType, algs []kmstypes.SigningAlgorithmSpec, keyARN string) (*publicKey, error) {
	if usage != "" && usage != kmstypes.KeyUsageTypeSignVerify {
		return nil, fmt.Errorf("key %s is not a signing key (KeyUsage %s)", keyARN, usage)
	}
	if len(algs) == 0 {
		return nil, fmt.Errorf("key %s lists no signing algorithms", keyARN)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("key %s: parsing the public key: %w", keyARN, err)
	}
	var vs []signature.Verifier
	var names []string
	for _, alg := range algs {
		v, err := verifierForKMSAlgorithm(pub, alg)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", keyARN, err)
		}
		vs = append(vs, v)
		names = append(names, string(alg))
	}
	return newPublicKey(pub, der, vs, names, keyARN), nil
}

func verifierForKMSAlgorithm(pub crypto.PublicKey, alg kmstypes.SigningAlgorithmSpec) (signature.Verifier, error) {
	var hash crypto.Hash
	switch {
	case strings.HasSuffix(string(alg), "_SHA_256"):
		hash = crypto.SHA256
	case strings.HasSuffix(string(alg), "_SHA_384"):
		hash = crypto.SHA384
	case strings.HasSuffix(string(alg), "_SHA_512"):
		hash = crypto.SHA512
	default:
		return nil, fmt.Errorf("signing algorithm %s is not supported by cosign", alg)
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if strings.HasPrefix(string(alg), "ECDSA_") {
			return signature.LoadECDSAVerifier(k, hash)
		}
	case *rsa.PublicKey:
		switch {
		case strings.HasPrefix(string(alg), "RSASSA_PSS_"):
			return signature.LoadRSAPSSVerifier(k, hash, nil)
		case strings.HasPrefix(string(alg), "RSASSA_PKCS1_V1_5_"):
			return signature.LoadRSAPKCS1v15Verifier(k, hash)
		}
	}
	return nil, fmt.Errorf("signing algorithm %s does not fit a %T key", alg, pub)
}

// keyFromPEM builds the key of key.data or key.secretRef. A PEM key says
// nothing about the hash it signs with, so the verifier accepts what cosign
// signers produce with such a key: ECDSA with the curve's digest (P-256 →
// SHA-256, P-384 → SHA-384, P-521 → SHA-512) or with SHA-256 (cosign's
// historical default); RSA PKCS#1 v1.5 or PSS with SHA-256; Ed25519 pure or
// pre-hashed (Ed25519ph).
func keyFromPEM(pemBytes []byte) (*publicKey, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("parsing the PEM public key: %w", err)
	}
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding the public key: %w", err)
	}
	var vs []signature.Verifier
	var names []string
	add := func(name string, v signature.Verifier, err error) {
		if err == nil {
			vs = append(vs, v)
			names = append(names, name)
		}
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		hash, name := curveHash(k.Curve)
		if hash == 0 {
			return nil, fmt.Errorf("ECDSA curve %s is not supported: use P-256, P-384 or P-521", k.Curve.Params().Name)
		}
		v, err := signature.LoadECDSAVerifier(k, hash)
		add("ECDSA_"+name, v, err)
		if hash != crypto.SHA256 {
			v, err := signature.LoadECDSAVerifier(k, crypto.SHA256)
			add("ECDSA_SHA_256", v, err)
		}
	case *rsa.PublicKey:
		v, err := signature.LoadRSAPKCS1v15Verifier(k, crypto.SHA256)
		add("RSASSA_PKCS1_V1_5_SHA_256", v, err)
		pv, err := signature.LoadRSAPSSVerifier(k, crypto.SHA256, nil)
		add("RSASSA_PSS_SHA_256", pv, err)
	case ed25519.PublicKey:
		v, err := signature.LoadED25519Verifier(k)
		add("ED25519", v, err)
		pv, err := signature.LoadED25519phVerifier(k)
		add("ED25519_PH", pv, err)
	default:
		return nil, fmt.Errorf("public key type %T is not supported: use ECDSA, RSA or Ed25519", pub)
	}
	if len(vs) == 0 {
		return nil, errors.New("no verifier could be built for the public key")
	}
	return newPublicKey(pub, der, vs, names, ""), nil
}

func curveHash(c elliptic.Curve) (crypto.Hash, string) {
	switch c {
	case elliptic.P256():
		return crypto.SHA256, "SHA_256"
	case elliptic.P384():
		return crypto.SHA384, "SHA_384"
	case elliptic.P521():
		return crypto.SHA512, "SHA_512"
	}
	return 0, ""
}

func newPublicKey(pub crypto.PublicKey, der []byte, vs []signature.Verifier, names []string, keyARN string) *publicKey {
	sum := sha256.Sum256(der)
	return &publicKey{
		verifier:    &multiVerifier{pub: pub, verifiers: vs},
		fingerprint: "SHA256:" + hex.EncodeToString(sum[:]),
		schemes:     names,
		keyARN:      keyARN,
	}
}

// multiVerifier is a signature.Verifier that accepts a signature any of
// its verifiers (one key, several schemes) accepts. cosign's verification
// functions and sigstore-go's bundle verifier both take it as the key.
type multiVerifier struct {
	pub       crypto.PublicKey
	verifiers []signature.Verifier
}

func (m *multiVerifier) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return m.pub, nil
}

func (m *multiVerifier) VerifySignature(sig, message io.Reader, opts ...signature.VerifyOption) error {
	s, err := io.ReadAll(sig)
	if err != nil {
		return err
	}
	msg, err := io.ReadAll(message)
	if err != nil {
		return err
	}
	var first error
	for _, v := range m.verifiers {
		err := v.VerifySignature(bytes.NewReader(s), bytes.NewReader(msg), opts...)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}
