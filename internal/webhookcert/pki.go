package webhookcert

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// Secret keys. ca.crt is the bundle the API server trusts: the signing CA
// first, then earlier CAs that have not expired, so replicas still serving a
// certificate from the previous CA stay trusted during a rotation.
const (
	keyCABundle = "ca.crt"
	keyCAKey    = "ca.key"
	keyCert     = "tls.crt"
	keyKey      = "tls.key"
)

// backdate covers clock skew between the replica that issues a certificate
// and the API servers that check it.
const backdate = 5 * time.Minute

// material is the parsed content of the Secret.
type material struct {
	cas    []*x509.Certificate // cas[0] signs; the rest are still trusted
	caKey  crypto.Signer
	cert   *x509.Certificate
	keyPEM []byte
	tls    *tls.Certificate
}

// pemCertificate is the PEM block type of every certificate Signet writes or reads.
const pemCertificate = "CERTIFICATE"

// bundlePEM is what goes into caBundle and ca.crt.
func (m *material) bundlePEM() []byte {
	var b bytes.Buffer
	for _, c := range m.cas {
		_ = pem.Encode(&b, &pem.Block{Type: pemCertificate, Bytes: c.Raw})
	}
	return b.Bytes()
}

func (m *material) data() (map[string][]byte, error) {
	caKey, err := x509.MarshalPKCS8PrivateKey(m.caKey)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		keyCABundle: m.bundlePEM(),
		keyCAKey:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caKey}),
		keyCert:     pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: m.cert.Raw}),
		keyKey:      m.keyPEM,
	}, nil
}

// parseMaterial reads what a Secret holds; anything missing or broken is an
// error and the caller starts over with a new CA.
func parseMaterial(data map[string][]byte) (*material, error) {
	cas, err := parseCerts(data[keyCABundle])
	if err != nil || len(cas) == 0 {
		return nil, fmt.Errorf("%s: no certificates", keyCABundle)
	}
	caKey, err := parseKey(data[keyCAKey])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyCAKey, err)
	}
	if !publicKeysEqual(cas[0].PublicKey, caKey.Public()) {
		return nil, fmt.Errorf("%s does not belong to the first certificate in %s", keyCAKey, keyCABundle)
	}
	m := &material{cas: cas, caKey: caKey}
	if pair, err := tls.X509KeyPair(data[keyCert], data[keyKey]); err == nil {
		m.tls, m.cert, m.keyPEM = &pair, pair.Leaf, data[keyKey]
	}
	return m, nil
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out, nil
		}
		if block.Type != pemCertificate {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

func parseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%T is not a signing key", k)
	}
	return s, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// needsRenewal: less than a third of validity (the configured lifetime,
// not NotAfter−NotBefore, which includes the backdating) remains.
func needsRenewal(c *x509.Certificate, now time.Time, validity time.Duration) bool {
	return now.After(c.NotAfter.Add(-validity / 3))
}

// newCA makes a self-signed CA valid for validity.
func newCA(now time.Time, validity time.Duration) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "signet-webhook-ca", Organization: []string{"signet"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return c, key, err
}

// issue makes a serving certificate for hosts (DNS names or IP addresses)
// signed by the material's CA, never outliving it.
func (m *material) issue(hosts []string, now time.Time, validity time.Duration) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	notAfter := now.Add(validity)
	if ca := m.cas[0]; notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, m.cas[0], key.Public(), m.caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	pair, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), keyPEM)
	if err != nil {
		return err
	}
	m.tls, m.cert, m.keyPEM = &pair, pair.Leaf, keyPEM
	return nil
}

// certServes reports whether the serving certificate is current: signed by
// the signing CA, naming exactly hosts, and not due for renewal.
func (m *material) certServes(hosts []string, now time.Time, validity time.Duration) bool {
	if m.cert == nil || m.cert.CheckSignatureFrom(m.cas[0]) != nil || needsRenewal(m.cert, now, validity) {
		return false
	}
	var have []string
	have = append(have, m.cert.DNSNames...)
	for _, ip := range m.cert.IPAddresses {
		have = append(have, ip.String())
	}
	want := slices.Clone(hosts)
	for i, h := range want {
		if ip := net.ParseIP(h); ip != nil {
			want[i] = ip.String()
		}
	}
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}

// fingerprint names a CA in logs and in the served-CA bookkeeping.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return fmt.Sprintf("%x", sum[:8])
}
