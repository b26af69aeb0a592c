package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority that can issue certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// PEM is the CA certificate, PEM-encoded: what a trust bundle holds.
	PEM []byte
}

// NewCA makes a self-signed CA valid from an hour ago for validity.
func NewCA(name string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, PEM: pemBlock("CERTIFICATE", der)}, nil
}

// LoadCA reads a CA back from its PEM certificate and key (a
// kubernetes.io/tls Secret's tls.crt and tls.key), to issue more
// certificates from it.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA: %w", err)
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || pair.Leaf == nil || !pair.Leaf.IsCA {
		return nil, errors.New("pki: not a CA certificate with a signing key")
	}
	return &CA{Cert: pair.Leaf, Key: key, PEM: pemBlock("CERTIFICATE", pair.Certificate[0])}, nil
}

// Leaf is an issued certificate and its key, PEM-encoded.
type Leaf struct {
	Cert *x509.Certificate
	// CertPEM and KeyPEM are what TLS_CERT_FILE and TLS_KEY_FILE hold.
	CertPEM []byte
	KeyPEM  []byte
}

// Request describes a certificate to issue.
type Request struct {
	// Names are the subject alternative names: DNS names, IP addresses,
	// or URIs (spiffe://...), told apart by their form.
	Names []string
	// NotBefore and NotAfter default to an hour ago and a day from now.
	NotBefore, NotAfter time.Time
}

// Issue signs a certificate for both server and client authentication,
// as cert-manager and Helm's genSignedCert issue them.
func (ca *CA) Issue(r Request) (*Leaf, error) {
	if len(r.Names) == 0 {
		return nil, errors.New("pki: a certificate needs at least one name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if r.NotBefore.IsZero() {
		r.NotBefore = time.Now().Add(-time.Hour)
	}
	if r.NotAfter.IsZero() {
		r.NotAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: r.Names[0]},
		NotBefore:    r.NotBefore,
		NotAfter:     r.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, n := range r.Names {
		switch u, err := url.Parse(n); {
		case net.ParseIP(n) != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(n))
		case err == nil && u.Scheme != "":
			tmpl.URIs = append(tmpl.URIs, u)
		default:
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Leaf{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", keyDER)}, nil
}

// IssueFiles issues a certificate for r and writes it, its key and the
// CA bundle (bundle, or this CA alone when none is given) into dir with
// WriteFiles.
func (ca *CA) IssueFiles(dir string, r Request, bundle ...*CA) (*Leaf, Files, error) {
	leaf, err := ca.Issue(r)
	if err != nil {
		return nil, Files{}, err
	}
	if len(bundle) == 0 {
		bundle = []*CA{ca}
	}
	f, err := WriteFiles(dir, leaf, bundle...)
	if err != nil {
		return nil, Files{}, err
	}
	return leaf, f, nil
}

// Files are the paths WriteFiles wrote, in the layout of a
// kubernetes.io/tls Secret that cert-manager fills.
type Files struct {
	Cert, Key, CA string
}

// WriteFiles writes tls.crt, tls.key and ca.crt (the bundle) into dir,
// each atomically (a rename), so a process watching them never reads half
// a file.
func WriteFiles(dir string, leaf *Leaf, bundle ...*CA) (Files, error) {
	f := Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), CA: filepath.Join(dir, "ca.crt")}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, err
	}
	var cas []byte
	for _, ca := range bundle {
		cas = append(cas, ca.PEM...)
	}
	for _, w := range []struct {
		path string
		data []byte
	}{{f.Key, leaf.KeyPEM}, {f.Cert, leaf.CertPEM}, {f.CA, cas}} {
		if err := writeAtomic(w.path, w.data); err != nil {
			return Files{}, err
		}
	}
	return f, nil
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
