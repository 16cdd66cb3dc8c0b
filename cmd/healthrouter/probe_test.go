package main

import (
	"bytes"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProbe(t *testing.T) {
	health := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.Write([]byte("ok\n"))
		case "/moved":
			http.Redirect(w, r, "/healthz", http.StatusMovedPermanently)
		default:
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	})
	plain := httptest.NewServer(health)
	defer plain.Close()
	secure := httptest.NewTLSServer(health)
	defer secure.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	// The https server's certificate is for 127.0.0.1 and example.com.
	secureByName := strings.Replace(secure.URL, "127.0.0.1", "example.com", 1)

	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string // "" for success
	}{
		{"http", nil, []string{"--url", plain.URL + "/healthz"}, ""},
		{"URL from the environment", map[string]string{envProbeURL: plain.URL + "/healthz"}, nil, ""},
		{"flag beats the environment", map[string]string{envProbeURL: plain.URL + "/down"}, []string{"--url", plain.URL + "/healthz"}, ""},
		{"unhealthy", nil, []string{"--url", plain.URL + "/down"}, "status 503"},
		{"redirect is not healthy", nil, []string{"--url", plain.URL + "/moved"}, "status 301"},
		{"https without trust", nil, []string{"--url", secure.URL + "/healthz"}, "certificate"},
		{"https with the CA", nil, []string{"--url", secure.URL + "/healthz", "--ca-file", caFile}, ""},
		{"https with the CA from the environment", map[string]string{envProbeURL: secure.URL + "/healthz", envProbeCAFile: caFile}, nil, ""},
		{"https insecure on loopback", nil, []string{"--url", secure.URL + "/healthz", "--insecure-loopback"}, ""},
		{"https insecure from the environment", map[string]string{envProbeURL: secure.URL + "/healthz", envProbeInsecure: "true"}, nil, ""},
		{"insecure refused off loopback", nil, []string{"--url", secureByName + "/healthz", "--insecure-loopback"}, "only for a loopback host"},
		{"bad insecure value", map[string]string{envProbeInsecure: "sure"}, nil, "want true or false"},
		{"CA file for plain http", nil, []string{"--url", plain.URL + "/healthz", "--ca-file", caFile}, "apply to https"},
		{"CA file that is not PEM", nil, []string{"--url", secure.URL + "/healthz", "--ca-file", os.Args[0]}, "holds no PEM certificate"},
		{"not a URL", nil, []string{"--url", "127.0.0.1:8080/healthz"}, "want http:// or https://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{envProbeURL, envProbeCAFile, envProbeInsecure} {
				t.Setenv(k, tt.env[k])
			}
			var stdout, stderr bytes.Buffer
			err := probe(tt.args, &stdout, &stderr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("probe: %v", err)
			case tt.wantErr == "" && stdout.String() != "ok\n":
				t.Fatalf("stdout %q", stdout.String())
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("probe: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}
