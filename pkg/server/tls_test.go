package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/ingest"
)

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files
// and returns their paths and the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "healthrouter test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

func TestIngestOverTLS(t *testing.T) {
	certFile, keyFile, cert := selfSigned(t)
	ts := newTestServer(t, true, func(c *config.Config) {
		c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
	})
	addr := ts.serveLoopback(t)
	url := "https://" + addr

	roots := x509.NewCertPool()
	roots.AddCert(cert)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer client.CloseIdleConnections()
	body := jsonArray(event("web-1.eu-west.example.com", "eu-west", "disk", "critical"))
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/events", strings.NewReader(string(gz(t, body))))
	req.Header.Set("Authorization", "Bearer "+ingestToken)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("POST over TLS: %d (tls %v)", resp.StatusCode, resp.TLS != nil)
	}
	if n := ts.tracker.Stats().TrackedChecks; n != 1 {
		t.Fatalf("tracked checks = %d, want 1", n)
	}

	// A client that does not trust the certificate is refused, and plain
	// HTTP gets no answer from the TLS listener.
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Fatal("untrusted certificate accepted")
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200 on the TLS listener")
		}
	}
}

// A pair that does not load fails New, before anything is served.
func TestBadCertificateFailsNew(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	otherCert, _, _ := selfSigned(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, cert, key string }{
		{"garbage certificate", garbage, keyFile},
		{"key of another certificate", otherCert, keyFile},
		{"key file is a certificate", certFile, certFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.TLS = config.TLS{CertFile: tc.cert, KeyFile: tc.key}
			dec, err := ingest.NewDecoder(cfg.Ingest)
			if err != nil {
				t.Fatal(err)
			}
			_, err = New(Options{Config: cfg, Decoder: dec, Logger: zap.NewNop(), Registry: prometheus.NewRegistry()})
			if err == nil || !strings.Contains(err.Error(), "tls.cert_file") {
				t.Fatalf("New with %s: %v, want an error naming tls.cert_file", tc.name, err)
			}
		})
	}
}

// TestHTTPErrorLogIsSampled: connection-level errors, which any peer can
// cause (a garbage TLS handshake logs one line each), are logged a few per
// second per kind, the peer a field of its own.
func TestHTTPErrorLogIsSampled(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	log := httpErrorLog(zap.New(core))
	for i := range 100 {
		log.Printf("http: TLS handshake error from [2001:db8::%d]:443%02d: EOF", i%7, i)
	}
	log.Printf("http: Accept error: accept tcp 127.0.0.1:8080: accept4: too many open files; retrying in 1s")
	handshakes := logs.FilterMessage("http: TLS handshake error").All()
	// The sampler counts per wall-clock second: a loop straddling one
	// gets a second allowance.
	if n := len(handshakes); n < httpErrorsPerSecond || n > 2*httpErrorsPerSecond {
		t.Fatalf("%d handshake errors logged of 100, want %d (twice that across a second's turn)", n, httpErrorsPerSecond)
	}
	if f := handshakes[0].ContextMap(); f["remote"] != "[2001:db8::0]:44300" || f["error"] != "EOF" {
		t.Errorf("fields %v, want the peer and the error apart", f)
	}
	if n := logs.FilterMessageSnippet("Accept error").Len(); n != 1 {
		t.Errorf("%d accept errors logged, want 1: another kind has its own allowance", n)
	}
}
