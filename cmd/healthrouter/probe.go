package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
)

func init() {
	register("probe", "exit 0 when a healthrouter answers its health check (for container health checks)", probe)
}

// The probe's settings can come from the environment, so one image serves
// plain HTTP and TLS deployments without changing its HEALTHCHECK.
const (
	envProbeURL      = "HEALTHROUTER_PROBE_URL"
	envProbeCAFile   = "HEALTHROUTER_PROBE_CA_FILE"
	envProbeInsecure = "HEALTHROUTER_PROBE_INSECURE_LOOPBACK"

	defaultProbeURL = "http://127.0.0.1:8080/healthz"
)

func probe(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("probe", stderr)
	target := fs.String("url", envOr(envProbeURL, defaultProbeURL), "health check `URL`, http or https (env "+envProbeURL+")")
	caFile := fs.String("ca-file", os.Getenv(envProbeCAFile),
		"PEM `file` of the CA that signed the server's certificate, trusted besides the system's (env "+envProbeCAFile+")")
	insecureDefault := false
	if v := os.Getenv(envProbeInsecure); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s=%q: want true or false", envProbeInsecure, v)
		}
		insecureDefault = b
	}
	insecure := fs.Bool("insecure-loopback", insecureDefault,
		"do not verify the server's certificate; only for a loopback URL (env "+envProbeInsecure+"=true)")
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	client, err := probeClient(*target, *caFile, *insecure, *timeout)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *target, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", *target, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: status %d", *target, resp.StatusCode)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// probeClient is an HTTP client for target: for https it trusts the system
// roots and caFile, or, for a loopback target only, any certificate.
func probeClient(target, caFile string, insecure bool, timeout time.Duration) (*http.Client, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("probe URL %q: want http:// or https://host:port/healthz", target)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DisableKeepAlives = true
	client := &http.Client{
		Timeout:   timeout,
		Transport: transport,
		// A health check that redirects is not healthy.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if u.Scheme == "http" {
		if caFile != "" || insecure {
			return nil, fmt.Errorf("probe URL %q is plain http: --ca-file and --insecure-loopback apply to https", target)
		}
		return client, nil
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case insecure:
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("--insecure-loopback with %s: certificate checks are skipped only for a loopback host", u.Host)
		}
		// The probe runs beside the server: nothing on the path to verify.
		tlsCfg.InsecureSkipVerify = true
	case caFile != "":
		roots, err := rootsWith(caFile)
		if err != nil {
			return nil, fmt.Errorf("probe: %w", err)
		}
		tlsCfg.RootCAs = roots
	}
	transport.TLSClientConfig = tlsCfg
	return client, nil
}

// rootsWith is the system's certificate roots plus the CA certificates in
// the PEM file caFile: a private CA signs most internal servers.
func rootsWith(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, errors.New("CA file " + caFile + " holds no PEM certificate")
	}
	return roots, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
