package tlsfiles

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/tls/certprovider"
	"google.golang.org/grpc/credentials/tls/certprovider/pemfile"
	"google.golang.org/grpc/peer"
)

// Client authentication modes (TLS_CLIENT_AUTH).
const (
	// ClientAuthNone: a client need not present a certificate; one it
	// presents must chain to TLS_CA_FILE, and then names the caller.
	ClientAuthNone = "none"
	// ClientAuthRequire: mutual TLS; every client presents a certificate
	// chained to TLS_CA_FILE.
	ClientAuthRequire = "require"
)

// Config is the TLS of one process, from its environment.
type Config struct {
	// CertFile and KeyFile are this process's certificate chain and
	// private key (PEM). Set: every listener that carries a secret or a
	// key serves TLS only. Unset: plaintext (local development).
	CertFile string `env:"TLS_CERT_FILE"`
	KeyFile  string `env:"TLS_KEY_FILE"`
	// CAFile is the bundle of CA certificates this process trusts for its
	// peers: the servers it calls and the clients that present
	// certificates. Empty: the system's roots verify servers, and client
	// certificates cannot be verified.
	CAFile string `env:"TLS_CA_FILE"`
	// ClientAuth is ClientAuthNone or ClientAuthRequire.
	ClientAuth string `env:"TLS_CLIENT_AUTH" envDefault:"none"`
	// ReloadInterval is how often the files are read again. A Kubernetes
	// Secret reaches the pod's volume up to a minute or so after it
	// changes; this adds at most its own length to that.
	ReloadInterval time.Duration `env:"TLS_RELOAD_INTERVAL" envDefault:"10s"`
}

// Enabled reports whether the process serves TLS.
func (c Config) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// Validate checks the settings, not the files (Open reads those).
func (c Config) Validate() error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("TLS_CERT_FILE and TLS_KEY_FILE are set together or not at all"))
	}
	if c.CertFile != "" && c.KeyFile != "" && filepath.Dir(c.CertFile) != filepath.Dir(c.KeyFile) {
		// pemfile reads the pair from one directory, the way a Secret
		// volume swaps both at once.
		errs = append(errs, errors.New("TLS_CERT_FILE and TLS_KEY_FILE must be in the same directory"))
	}
	switch c.ClientAuth {
	case ClientAuthNone:
	case ClientAuthRequire:
		if !c.Enabled() || c.CAFile == "" {
			errs = append(errs, errors.New("TLS_CLIENT_AUTH=require needs TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE"))
		}
	default:
		errs = append(errs, fmt.Errorf("TLS_CLIENT_AUTH must be none or require, got %q", c.ClientAuth))
	}
	if c.ReloadInterval <= 0 {
		errs = append(errs, fmt.Errorf("TLS_RELOAD_INTERVAL must be positive, got %s", c.ReloadInterval))
	}
	return errors.Join(errs...)
}

// Files is the open TLS material of a process. The zero of *Files (nil)
// means plaintext: its methods then return nil configurations.
type Files struct {
	cfg      Config
	provider certprovider.Provider
	// systemRoots verify servers when no TLS_CA_FILE is given.
	systemRoots *x509.CertPool
}

// Open reads the files once, so that a missing or bad file stops the
// process at start with a line naming its variable, then starts watching
// them. It returns nil, nil when neither a certificate nor a CA bundle is
// configured.
func Open(c Config) (*Files, error) {
	if err := c.Validate(); err != nil {
		return nil, errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if !c.Enabled() && c.CAFile == "" {
		return nil, nil
	}
	if c.Enabled() {
		certPEM, err := os.ReadFile(c.CertFile)
		if err != nil {
			return nil, fmt.Errorf("TLS_CERT_FILE: %w", err)
		}
		keyPEM, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS_KEY_FILE: %w", err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// Name the files, never echo them: one is a private key
			// (crypto/tls's reason quotes no key bytes).
			return nil, fmt.Errorf("TLS_CERT_FILE %s and TLS_KEY_FILE %s: not a matching PEM certificate and key: %w", c.CertFile, c.KeyFile, err)
		}
		if now := time.Now(); now.After(pair.Leaf.NotAfter) {
			return nil, fmt.Errorf("TLS_CERT_FILE %s: certificate expired at %s", c.CertFile, pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	if c.CAFile != "" {
		caPEM, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS_CA_FILE: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("TLS_CA_FILE %s: no PEM certificate in it", c.CAFile)
		}
	}
	f := &Files{cfg: c}
	if c.CAFile == "" {
		roots, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("system CA certificates: %w", err)
		}
		f.systemRoots = roots
	}
	var err error
	f.provider, err = pemfile.NewProvider(pemfile.Options{
		CertFile:        c.CertFile,
		KeyFile:         c.KeyFile,
		RootFile:        c.CAFile,
		RefreshDuration: c.ReloadInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("TLS_CERT_FILE, TLS_KEY_FILE, TLS_CA_FILE: %w", err)
	}
	return f, nil
}

// Close stops watching the files.
func (f *Files) Close() {
	if f != nil {
		f.provider.Close()
	}
}

// Serving reports whether this process serves TLS.
func (f *Files) Serving() bool { return f != nil && f.cfg.Enabled() }

// keyMaterial is what the files hold now. The provider loaded them while
// Open checked them, so this does not wait in practice; the bound is for
// a provider that never got a valid pair.
func (f *Files) keyMaterial(ctx context.Context) (*certprovider.KeyMaterial, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	km, err := f.provider.KeyMaterial(ctx)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate files not loaded: %w", err)
	}
	return km, nil
}

// roots is the trust bundle now: TLS_CA_FILE as last read, or the
// system's.
func (f *Files) roots(ctx context.Context) (*x509.CertPool, error) {
	if f.cfg.CAFile == "" {
		return f.systemRoots, nil
	}
	km, err := f.keyMaterial(ctx)
	if err != nil {
		return nil, err
	}
	return km.Roots, nil
}

// cipherSuites are the TLS 1.2 suites offered: forward secrecy and AEAD
// only. TLS 1.3's suites are all of that kind and not configurable.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerConfig is the configuration of a TLS listener offering the
// application protocols nextProtos (ALPN: "h2" for gRPC), built for each
// handshake from the files as they are now. verifyClients asks clients
// for a certificate (required under TLS_CLIENT_AUTH=require, verified if
// given otherwise); without it none is asked for. Nil when not serving
// TLS.
func (f *Files) ServerConfig(verifyClients bool, nextProtos ...string) *tls.Config {
	if !f.Serving() {
		return nil
	}
	clientAuth := tls.NoClientCert
	if verifyClients {
		clientAuth = tls.VerifyClientCertIfGiven
		if f.cfg.ClientAuth == ClientAuthRequire {
			clientAuth = tls.RequireAndVerifyClientCert
		}
	}
	if clientAuth != tls.NoClientCert && f.cfg.CAFile == "" {
		// Nothing to verify a certificate with: do not ask for one.
		clientAuth = tls.NoClientCert
	}
	base := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites,
		NextProtos:   nextProtos,
		ClientAuth:   clientAuth,
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			km, err := f.keyMaterial(hello.Context())
			if err != nil {
				return nil, err
			}
			c := base.Clone()
			c.Certificates = km.Certs
			c.ClientCAs = km.Roots
			return c, nil
		},
	}
}

// ServerCredentials are gRPC server credentials (ALPN h2, client
// certificates asked for as ServerConfig says). Nil when not serving TLS.
func (f *Files) ServerCredentials() credentials.TransportCredentials {
	if !f.Serving() {
		return nil
	}
	return credentials.NewTLS(f.ServerConfig(true, "h2"))
}

// clientConfig is the configuration of one connection this process opens
// to serverName: the server's certificate is verified against the trust
// bundle as it is at this moment (so a CA added to TLS_CA_FILE is trusted
// by the next connection, with no restart); this process's own
// certificate, if it has one, is presented when the server asks.
func (f *Files) clientConfig(ctx context.Context, serverName string) (*tls.Config, error) {
	roots, err := f.roots(ctx)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites,
		RootCAs:      roots,
		ServerName:   serverName,
	}
	if f.Serving() {
		c.GetClientCertificate = func(info *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			km, err := f.keyMaterial(info.Context())
			if err != nil {
				return nil, err
			}
			return &km.Certs[0], nil
		}
	}
	return c, nil
}

// ClientCredentials are gRPC client credentials: each connection is
// configured as it is opened (see clientConfig) and verifies the server's
// certificate for the host of the address dialled. Nil for a process
// with no TLS files (the caller then dials plaintext).
func (f *Files) ClientCredentials() credentials.TransportCredentials {
	if f == nil {
		return nil
	}
	return &clientCredentials{TransportCredentials: credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12}), f: f}
}

// clientCredentials builds grpc-go's TLS credentials per handshake, from
// the files as they are then; everything else is grpc-go's.
type clientCredentials struct {
	credentials.TransportCredentials
	f              *Files
	serverOverride string
}

func (c *clientCredentials) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	name := c.serverOverride
	if name == "" {
		host, _, err := net.SplitHostPort(authority)
		if err != nil {
			host = authority
		}
		name = host
	}
	cfg, err := c.f.clientConfig(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	return credentials.NewTLS(cfg).ClientHandshake(ctx, authority, conn)
}

func (c *clientCredentials) Clone() credentials.TransportCredentials {
	return &clientCredentials{TransportCredentials: c.TransportCredentials.Clone(), f: c.f, serverOverride: c.serverOverride}
}

func (c *clientCredentials) OverrideServerName(name string) error { //nolint:staticcheck // part of the interface
	c.serverOverride = name
	return nil
}

// HTTPTransport is an HTTP transport whose https connections are
// configured as they are opened (see clientConfig). Nil for a process
// with no TLS files: use http.DefaultTransport's settings.
func (f *Files) HTTPTransport() *http.Transport {
	if f == nil {
		return nil
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Direct connections only: through an HTTPS_PROXY net/http would do
	// the TLS itself with TLSClientConfig, not with DialTLSContext, and
	// the CA bundle would not be the one verifying the server.
	t.Proxy = nil
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		cfg, err := f.clientConfig(ctx, host)
		if err != nil {
			return nil, err
		}
		return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, addr)
	}
	return t
}

// PeerNames returns the names in the verified client certificate of the
// call in ctx (its DNS names and URIs), and false when the peer presented
// none or the connection is not TLS. Only a certificate that chained to
// TLS_CA_FILE during the handshake counts.
func PeerNames(ctx context.Context) ([]string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil, false
	}
	leaf := info.State.VerifiedChains[0][0]
	names := slices.Clone(leaf.DNSNames)
	for _, u := range leaf.URIs {
		names = append(names, u.String())
	}
	return names, true
}

// PeerIs reports whether the call in ctx comes from a verified client
// certificate carrying one of names.
func PeerIs(ctx context.Context, names []string) bool {
	got, ok := PeerNames(ctx)
	if !ok {
		return false
	}
	for _, n := range got {
		if slices.Contains(names, n) {
			return true
		}
	}
	return false
}
