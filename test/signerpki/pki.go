// Package signerpki builds certificate chains shaped like AWS Signer's and
// signs images with them as AWS Signer does, for tests and the demo.
//
// A chain is P-384 throughout: a self-signed root, an intermediate CA and a
// leaf whose only key usage is DigitalSignature, with the code-signing EKU.
// Signatures use the notary.x509.signingAuthority scheme and carry the
// attributes AWS Signer sets: io.cncf.notary.verificationPlugin (critical,
// com.amazonaws.signer.notation.plugin) and the critical
// com.amazonaws.signer.signingProfileVersion and
// com.amazonaws.signer.signingJob. They are made by notation-go's plugin
// signer driving an in-process "envelope generator" plugin, the path
// `notation sign --plugin com.amazonaws.signer.notation.plugin` takes, with
// notation-core-go building the JWS or COSE envelope.
package signerpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"time"
)

// CA is a certificate authority: a root or an intermediate.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// parents are the CA's issuers up to the root, nearest first.
	parents []*x509.Certificate
}

// Chain is a signing certificate with its CAs: Certs is leaf first, root last.
type Chain struct {
	Certs []*x509.Certificate
	Key   *ecdsa.PrivateKey
}

// Validity is a certificate's validity period.
type Validity struct{ NotBefore, NotAfter time.Time }

// defaultValidity: valid an hour ago until three days on, like a Signer leaf.
func defaultValidity() Validity {
	now := time.Now()
	return Validity{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(72 * time.Hour)}
}

// NewRoot makes a self-signed P-384 root CA, valid from 30 days ago for ten years.
func NewRoot(commonName string) (*CA, error) {
	now := time.Now()
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	tmpl := caTemplate(commonName, Validity{NotBefore: now.Add(-30 * 24 * time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour)})
	cert, err := create(tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Intermediate makes a CA issued by ca.
func (ca *CA) Intermediate(commonName string) (*CA, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	tmpl := caTemplate(commonName, Validity{NotBefore: ca.Cert.NotBefore, NotAfter: ca.Cert.NotAfter})
	tmpl.MaxPathLen, tmpl.MaxPathLenZero = 0, true
	cert, err := create(tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, err
	}
	return &CA{
		Cert:    cert,
		Key:     key,
		parents: append([]*x509.Certificate{ca.Cert}, ca.parents...),
	}, nil
}

// Leaf issues a code-signing leaf, valid as v says (zero: an hour ago
// until three days on), and returns its chain.
func (ca *CA) Leaf(v Validity) (*Chain, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	return ca.LeafWithKey(key, v)
}

// LeafWithKey is Leaf for an existing key: tests reissue a signature's
// leaf with another validity.
func (ca *CA) LeafWithKey(key *ecdsa.PrivateKey, v Validity) (*Chain, error) {
	if v == (Validity{}) {
		v = defaultValidity()
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "AWS Signer", OrganizationalUnit: []string{"AWS Cryptography"}, Organization: []string{"AWS"}, Locality: []string{"Seattle"}, Province: []string{"WA"}, Country: []string{"US"}},
		NotBefore:             v.NotBefore,
		NotAfter:              v.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
	}
	leaf, err := create(tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, err
	}
	return &Chain{Certs: append([]*x509.Certificate{leaf, ca.Cert}, ca.parents...), Key: key}, nil
}

// PEM is the CA certificate, PEM-encoded.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

func caTemplate(commonName string, v Validity) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: commonName, OrganizationalUnit: []string{"Cryptography"}, Organization: []string{"Signet Test"}, Province: []string{"WA"}, Country: []string{"US"}},
		NotBefore:             v.NotBefore,
		NotAfter:              v.NotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func create(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, key *ecdsa.PrivateKey) (*x509.Certificate, error) {
	if tmpl.SerialNumber == nil || tmpl.SerialNumber.Sign() == 0 || tmpl.IsCA {
		sn, err := serial()
		if err != nil {
			return nil, err
		}
		tmpl.SerialNumber = sn
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
