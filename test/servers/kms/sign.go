package kms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha256" // registers the digests the algorithms name
	_ "crypto/sha512"
	"slices"
)

// signingAlgorithm is what a KMS SigningAlgorithmSpec means in Go's crypto.
type signingAlgorithm struct {
	hash crypto.Hash
	pss  bool
}

var signingAlgorithms = map[string]signingAlgorithm{
	"ECDSA_SHA_256":             {crypto.SHA256, false},
	"ECDSA_SHA_384":             {crypto.SHA384, false},
	"ECDSA_SHA_512":             {crypto.SHA512, false},
	"RSASSA_PKCS1_V1_5_SHA_256": {crypto.SHA256, false},
	"RSASSA_PKCS1_V1_5_SHA_384": {crypto.SHA384, false},
	"RSASSA_PKCS1_V1_5_SHA_512": {crypto.SHA512, false},
	"RSASSA_PSS_SHA_256":        {crypto.SHA256, true},
	"RSASSA_PSS_SHA_384":        {crypto.SHA384, true},
	"RSASSA_PSS_SHA_512":        {crypto.SHA512, true},
}

// opts are the signer options for alg. KMS's PSS salt is as long as the
// digest, which is what verifiers (cosign's included) assume.
func (alg signingAlgorithm) opts() crypto.SignerOpts {
	if alg.pss {
		return &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: alg.hash}
	}
	return alg.hash
}

// signRequest is the input of Sign and Verify.
type signRequest struct {
	KeyId            string
	Message          []byte
	MessageType      string // RAW (default) or DIGEST
	SigningAlgorithm string
	Signature        []byte // Verify only
}

// prepare decodes a Sign or Verify request, resolves the key, checks the
// algorithm against it and returns the digest to sign or verify.
func (s *Server) prepare(body []byte) (*key, signRequest, signingAlgorithm, []byte, *apiError) {
	var in signRequest
	fail := func(err *apiError) (*key, signRequest, signingAlgorithm, []byte, *apiError) {
		return nil, in, signingAlgorithm{}, nil, err
	}
	if err := decode(body, &in); err != nil {
		return fail(err)
	}
	switch {
	case len(in.Message) == 0:
		return fail(required("message"))
	case in.SigningAlgorithm == "":
		return fail(required("signingAlgorithm"))
	}
	k, err := s.resolve(in.KeyId)
	if err != nil {
		return fail(err)
	}
	alg, known := signingAlgorithms[in.SigningAlgorithm]
	if !known || !slices.Contains(keySpecs[k.spec].algorithms, in.SigningAlgorithm) {
		return fail(errorf("InvalidKeyUsageException",
			"Signing algorithm %s is not supported for key %s with key spec %s", in.SigningAlgorithm, k.arn, k.spec))
	}
	var digest []byte
	switch in.MessageType {
	case "", "RAW":
		if len(in.Message) > 4096 {
			return fail(errorf("ValidationException", "Message of type RAW must be at most 4096 bytes; send a digest with MessageType DIGEST"))
		}
		h := alg.hash.New()
		h.Write(in.Message)
		digest = h.Sum(nil)
	case "DIGEST":
		if len(in.Message) != alg.hash.Size() {
			return fail(errorf("ValidationException", "Digest is invalid length for algorithm %s.", in.SigningAlgorithm))
		}
		digest = in.Message
	default:
		return fail(errorf("ValidationException", "1 validation error detected: Value '%s' at 'messageType' failed to satisfy constraint: Member must satisfy enum value set: [RAW, DIGEST]", in.MessageType))
	}
	return k, in, alg, digest, nil
}

func (s *Server) sign(body []byte) (any, *apiError) {
	k, in, alg, digest, err := s.prepare(body)
	if err != nil {
		return nil, err
	}
	sig, signErr := k.signer.Sign(rand.Reader, digest, alg.opts())
	if signErr != nil {
		return nil, internalError(signErr)
	}
	// ECDSA signatures are ASN.1 DER, as from KMS.
	return map[string]any{"KeyId": k.arn, "Signature": sig, "SigningAlgorithm": in.SigningAlgorithm}, nil
}

func (s *Server) verify(body []byte) (any, *apiError) {
	k, in, alg, digest, err := s.prepare(body)
	if err != nil {
		return nil, err
	}
	if len(in.Signature) == 0 {
		return nil, required("signature")
	}
	var ok bool
	switch pub := k.signer.Public().(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(pub, digest, in.Signature)
	case *rsa.PublicKey:
		if alg.pss {
			ok = rsa.VerifyPSS(pub, alg.hash, digest, in.Signature, alg.opts().(*rsa.PSSOptions)) == nil
		} else {
			ok = rsa.VerifyPKCS1v15(pub, alg.hash, digest, in.Signature) == nil
		}
	}
	if !ok {
		// AWS answers a bad signature with this error, never with
		// SignatureValid=false.
		return nil, errorf("KMSInvalidSignatureException", "")
	}
	return map[string]any{"KeyId": k.arn, "SignatureValid": true, "SigningAlgorithm": in.SigningAlgorithm}, nil
}
