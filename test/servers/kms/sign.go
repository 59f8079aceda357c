package kms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha256" // registers the digests hashFor names
	_ "crypto/sha512"
	"slices"
	"strings"
)

// signRequest is the input shared by Sign and Verify. Blobs arrive base64
// encoded, which encoding/json decodes into []byte.
type signRequest struct {
	KeyId            string
	Message          []byte
	MessageType      string // RAW (default) or DIGEST
	SigningAlgorithm string
	Signature        []byte // Verify only
}

// prepare resolves the key, checks the algorithm against it and returns
// the digest to sign or verify.
func (s *Server) prepare(body []byte) (*key, signRequest, crypto.Hash, []byte, *apiError) {
	var in signRequest
	if err := decode(body, &in); err != nil {
		return nil, in, 0, nil, err
	}
	k, err := s.resolve(in.KeyId)
	if err != nil {
		return nil, in, 0, nil, err
	}
	if !slices.Contains(k.algorithms, in.SigningAlgorithm) {
		return nil, in, 0, nil, errorf("InvalidKeyUsageException",
			"Signing algorithm %s is not supported for key %s with key spec %s", in.SigningAlgorithm, k.arn, k.spec)
	}
	hash, _ := hashFor(in.SigningAlgorithm)
	var digest []byte
	switch in.MessageType {
	case "", "RAW":
		if len(in.Message) > 4096 {
			return nil, in, 0, nil, errorf("ValidationException", "Message of type RAW must be at most 4096 bytes")
		}
		h := hash.New()
		h.Write(in.Message)
		digest = h.Sum(nil)
	case "DIGEST":
		if len(in.Message) != hash.Size() {
			return nil, in, 0, nil, errorf("ValidationException",
				"Digest is invalid length for algorithm %s.", in.SigningAlgorithm)
		}
		digest = in.Message
	default:
		return nil, in, 0, nil, errorf("ValidationException", "MessageType %q must be RAW or DIGEST", in.MessageType)
	}
	return k, in, hash, digest, nil
}

func signerOpts(alg string, hash crypto.Hash) crypto.SignerOpts {
	if strings.HasPrefix(alg, "RSASSA_PSS_") {
		// KMS uses a salt as long as the digest.
		return &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: hash}
	}
	return hash
}

func (s *Server) sign(body []byte) (any, *apiError) {
	k, in, hash, digest, err := s.prepare(body)
	if err != nil {
		return nil, err
	}
	sig, signErr := k.signer.Sign(rand.Reader, digest, signerOpts(in.SigningAlgorithm, hash))
	if signErr != nil {
		return nil, &apiError{status: 500, code: "KMSInternalException", message: signErr.Error()}
	}
	return map[string]any{"KeyId": k.arn, "Signature": sig, "SigningAlgorithm": in.SigningAlgorithm}, nil
}

func (s *Server) verify(body []byte) (any, *apiError) {
	k, in, hash, digest, err := s.prepare(body)
	if err != nil {
		return nil, err
	}
	var ok bool
	switch pub := k.signer.Public().(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(pub, digest, in.Signature)
	case *rsa.PublicKey:
		if strings.HasPrefix(in.SigningAlgorithm, "RSASSA_PSS_") {
			ok = rsa.VerifyPSS(pub, hash, digest, in.Signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: hash}) == nil
		} else {
			ok = rsa.VerifyPKCS1v15(pub, hash, digest, in.Signature) == nil
		}
	}
	if !ok {
		// AWS answers an invalid signature with an error, not SignatureValid=false.
		return nil, errorf("KMSInvalidSignatureException", "")
	}
	return map[string]any{"KeyId": k.arn, "SignatureValid": true, "SigningAlgorithm": in.SigningAlgorithm}, nil
}
