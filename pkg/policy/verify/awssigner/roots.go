package awssigner

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"embed"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/notaryproject/notation-go/verifier/truststore"
)

// Trust store names, as Notation trust policies name AWS Signer's roots.
const (
	// StoreCommercial holds the root for the aws partition.
	StoreCommercial = "aws-signer-ts"
	// StoreGovCloud holds the root for the aws-us-gov partition.
	StoreGovCloud = "aws-us-gov-signer-ts"
)

//go:embed roots/*.pem
var embeddedRoots embed.FS

// Roots are the trust anchors of AWS Signer signatures, per trust store.
// They implement notation-go's truststore.X509TrustStore, in memory.
type Roots struct {
	stores      map[string][]*x509.Certificate
	fingerprint string
}

var _ truststore.X509TrustStore = (*Roots)(nil)

var defaultRoots = sync.OnceValues(func() (*Roots, error) {
	roots := &Roots{stores: map[string][]*x509.Certificate{}}
	for file, store := range map[string]string{
		"roots/aws-signer-notation-root.pem":        StoreCommercial,
		"roots/aws-us-gov-signer-notation-root.pem": StoreGovCloud,
	} {
		b, err := embeddedRoots.ReadFile(file)
		if err != nil {
			return nil, err
		}
		certs, err := parseRoots(b)
		if err != nil {
			return nil, fmt.Errorf("embedded %s: %w", file, err)
		}
		roots.stores[store] = certs
	}
	roots.fingerprint = roots.digest()
	return roots, nil
})

// DefaultRoots are AWS Signer's published roots, embedded in the binary:
// "AWS Signer Code Signing Root CA G1" (aws-signer-ts) and "AWS Signer Code
// Signing GovCloud (US) Root CA G1" (aws-us-gov-signer-ts).
func DefaultRoots() *Roots {
	r, err := defaultRoots()
	if err != nil {
		panic("awssigner: embedded AWS Signer roots are broken: " + err.Error()) // a build defect, caught by tests
	}
	return r
}

// LoadRoots reads the PEM file that replaces the embedded roots
// (--aws-signer-roots): for air-gapped root rotation, and for tests.
func LoadRoots(path string) (*Roots, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading AWS Signer roots: %w", err)
	}
	r, err := RootsFromPEM(b)
	if err != nil {
		return nil, fmt.Errorf("AWS Signer roots %s: %w", path, err)
	}
	return r, nil
}

// RootsFromPEM builds Roots from PEM certificates. AWS names its GovCloud
// root "... GovCloud (US) Root CA ...": a certificate whose subject common
// name contains "GovCloud" anchors aws-us-gov-signer-ts, every other one
// aws-signer-ts.
func RootsFromPEM(b []byte) (*Roots, error) {
	certs, err := parseRoots(b)
	if err != nil {
		return nil, err
	}
	r := &Roots{stores: map[string][]*x509.Certificate{}}
	for _, c := range certs {
		store := StoreCommercial
		if strings.Contains(c.Subject.CommonName, "GovCloud") {
			store = StoreGovCloud
		}
		r.stores[store] = append(r.stores[store], c)
	}
	r.fingerprint = r.digest()
	return r, nil
}

func parseRoots(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificates")
	}
	// The rule notation applies to its file-based trust stores.
	if err := truststore.ValidateCertificates(certs); err != nil {
		return nil, err
	}
	return certs, nil
}

// GetCertificates implements truststore.X509TrustStore.
func (r *Roots) GetCertificates(_ context.Context, storeType truststore.Type, name string) ([]*x509.Certificate, error) {
	if storeType != truststore.TypeSigningAuthority {
		return nil, truststore.TrustStoreError{Msg: fmt.Sprintf("Signet has no trust store of type %q", storeType)}
	}
	certs := r.stores[name]
	if len(certs) == 0 {
		return nil, truststore.CertificateError{Msg: fmt.Sprintf("no certificates in trust store %q", name)}
	}
	return certs, nil
}

// Certificates are the roots of one trust store.
func (r *Roots) Certificates(store string) []*x509.Certificate { return r.stores[store] }

// Fingerprint names the set of roots (a SHA-256 over every store and
// certificate), so verifiers with other roots never share verdicts.
func (r *Roots) Fingerprint() string { return r.fingerprint }

func (r *Roots) digest() string {
	var lines []string
	for store, certs := range r.stores {
		for _, c := range certs {
			sum := sha256.Sum256(c.Raw)
			lines = append(lines, store+"="+hex.EncodeToString(sum[:]))
		}
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:8])
}
