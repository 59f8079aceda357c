// Package testpki builds certificate chains shaped like AWS Signer's and
// signs images with them as AWS Signer does, for tests.
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
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
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
func NewRoot(t testing.TB, commonName string) *CA {
	t.Helper()
	now := time.Now()
	key := newKey(t)
	tmpl := caTemplate(commonName, Validity{NotBefore: now.Add(-30 * 24 * time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour)})
	return &CA{Cert: create(t, tmpl, tmpl, &key.PublicKey, key), Key: key}
}

// Intermediate makes a CA issued by ca.
func (ca *CA) Intermediate(t testing.TB, commonName string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := caTemplate(commonName, Validity{NotBefore: ca.Cert.NotBefore, NotAfter: ca.Cert.NotAfter})
	tmpl.MaxPathLen, tmpl.MaxPathLenZero = 0, true
	return &CA{
		Cert:    create(t, tmpl, ca.Cert, &key.PublicKey, ca.Key),
		Key:     key,
		parents: append([]*x509.Certificate{ca.Cert}, ca.parents...),
	}
}

// Leaf issues a code-signing leaf, valid as v says (zero: an hour ago
// until three days on), and returns its chain.
func (ca *CA) Leaf(t testing.TB, v Validity) *Chain {
	t.Helper()
	return ca.LeafWithKey(t, newKey(t), v)
}

// LeafWithKey is Leaf for an existing key: tests reissue a signature's
// leaf with another validity.
func (ca *CA) LeafWithKey(t testing.TB, key *ecdsa.PrivateKey, v Validity) *Chain {
	t.Helper()
	if v == (Validity{}) {
		v = defaultValidity()
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "AWS Signer", OrganizationalUnit: []string{"AWS Cryptography"}, Organization: []string{"AWS"}, Locality: []string{"Seattle"}, Province: []string{"WA"}, Country: []string{"US"}},
		NotBefore:             v.NotBefore,
		NotAfter:              v.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
	}
	leaf := create(t, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	return &Chain{Certs: append([]*x509.Certificate{leaf, ca.Cert}, ca.parents...), Key: key}
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

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func create(t testing.TB, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	if tmpl.SerialNumber == nil || tmpl.SerialNumber.Sign() == 0 || tmpl.IsCA {
		tmpl.SerialNumber = serial(t)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
