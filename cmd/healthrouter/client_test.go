package main

import (
	"bytes"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// TestHostsForget drives "hosts forget" against a stand-in for the API and
// checks the request it sends and what it prints.
func TestHostsForget(t *testing.T) {
	const admin = "admin-token-0123456789ab"
	t.Setenv(config.EnvAdminToken, admin)
	var got []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("region") {
		case "eu":
			_, _ = w.Write([]byte(`{"region":"eu","host":"db-1","forgotten":[{"region":"eu","host":"db-1","check":"cpu"},{"region":"eu","host":"db-1","check":"raid"}]}`))
		case "":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"host name is tracked in several regions: \"db-1\" is in regions eu, us; give the region"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"unknown host \"db-1\" in region \"mars\""}`))
		}
	}))
	defer api.Close()

	tests := []struct {
		name       string
		args       []string
		code       int
		wantReq    string
		wantStdout string
		wantStderr string
	}{
		{
			name: "flags after the host", args: []string{"db-1", "--region", "eu", "--server", api.URL}, code: 0,
			wantReq: "DELETE /v1/hosts/db-1?region=eu Bearer " + admin, wantStdout: "host db-1 (eu) forgotten: 2 checks removed\n",
		},
		{
			name: "flags before the host", args: []string{"--server", api.URL, "--region=eu", "db-1"}, code: 0,
			wantReq: "DELETE /v1/hosts/db-1?region=eu Bearer " + admin, wantStdout: "host db-1 (eu) forgotten: 2 checks removed\n",
		},
		{
			name: "ambiguous name", args: []string{"db-1", "--server", api.URL}, code: 1,
			wantReq: "DELETE /v1/hosts/db-1 Bearer " + admin, wantStderr: "give the region (400)",
		},
		{
			name: "unknown host", args: []string{"db-1", "--region", "mars", "--server", api.URL}, code: 1,
			wantReq: "DELETE /v1/hosts/db-1?region=mars Bearer " + admin, wantStderr: `in region "mars" (404)`,
		},
		{name: "no host", args: []string{"--server", api.URL}, code: 2, wantStderr: "give one host name"},
		{name: "two hosts", args: []string{"a", "b", "--server", api.URL}, code: 2, wantStderr: "give one host name"},
		{name: "unknown flag", args: []string{"db-1", "--colour", "red"}, code: 2, wantStderr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"hosts", "forget"}, tt.args...), &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.code, stderr.String())
			}
			if tt.wantReq != "" && (len(got) != 1 || got[0] != tt.wantReq) {
				t.Errorf("requests %q, want %q", got, tt.wantReq)
			}
			if tt.wantReq == "" && len(got) != 0 {
				t.Errorf("sent %q on a usage error", got)
			}
			if stdout.String() != tt.wantStdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantStderr)
			}
		})
	}

	var stderr bytes.Buffer
	if code := run([]string{"hosts", "list"}, &bytes.Buffer{}, &stderr); code != 2 || !strings.Contains(stderr.String(), "want forget") {
		t.Errorf("unknown subcommand: exit %d, %s", code, stderr.String())
	}
}

// A refused request says which variable to set: the admin token for
// writes, an ingest or the admin token for reads (the server's read
// endpoints take either). Nothing answering says to check --server.
func TestClientErrorsSayWhatToDo(t *testing.T) {
	const sent = "client-errors-token-0123456789"
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"missing or invalid bearer token"}`))
	}))
	defer api.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tlsAPI := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsAPI.Close()

	readAdvice := "set " + config.EnvIngestTokens + " to one of the server's ingest tokens, or " + config.EnvAdminToken + " to its admin token"
	adminAdvice := "set " + config.EnvAdminToken + " to the server's admin token"
	tests := []struct {
		name        string
		env         map[string]string
		args        []string
		want        []string
		notContains string
	}{
		{name: "read without a token", args: []string{"maintenance", "list", "--server", api.URL},
			want: []string{"missing or invalid bearer token (401): no token sent; " + readAdvice}},
		{name: "read with a refused ingest token", env: map[string]string{config.EnvIngestTokens: sent + ",other"},
			args: []string{"report", "--server", api.URL},
			want: []string{"the server refused the token from " + config.EnvIngestTokens + "; " + readAdvice}},
		{name: "write without a token", args: []string{"maintenance", "rm", "w1", "--server", api.URL},
			want: []string{"(401): no token sent; " + adminAdvice}},
		{name: "write ignores ingest tokens", env: map[string]string{config.EnvIngestTokens: sent},
			args: []string{"hosts", "forget", "web-1", "--server", api.URL},
			want: []string{"(401): no token sent; " + adminAdvice}},
		{name: "write with a refused admin token", env: map[string]string{config.EnvAdminToken: sent},
			args: []string{"maintenance", "add", "--region", "eu", "--for", "1h", "--reason", "r", "--server", api.URL},
			want: []string{"the server refused the token from " + config.EnvAdminToken + "; " + adminAdvice}},
		{name: "nothing listening", args: []string{"maintenance", "list", "--server", closed.URL},
			want: []string{"connection refused", "(no healthrouter at " + closed.URL + ": give its URL with --server)"}},
		{name: "a 401 is not a connection problem", args: []string{"maintenance", "list", "--server", api.URL},
			want: []string{"(401)"}, notContains: "--server"},
		{name: "a server without its scheme", args: []string{"maintenance", "list", "--server", strings.TrimPrefix(api.URL, "http://")},
			want: []string{"want http(s)://host:port, such as http://127.0.0.1:8080"}},
		{name: "a certificate from an unknown CA", args: []string{"maintenance", "list", "--server", tlsAPI.URL},
			want: []string{"certificate", "give that CA's PEM with --ca-file or " + envCAFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(config.EnvAdminToken, tt.env[config.EnvAdminToken])
			t.Setenv(config.EnvIngestTokens, tt.env[config.EnvIngestTokens])
			code, stdout, stderr := runCLI(tt.args...)
			if code != 1 || stdout != "" {
				t.Fatalf("exit %d, stdout %q; want 1 and nothing", code, stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if tt.notContains != "" && strings.Contains(stderr, tt.notContains) {
				t.Errorf("stderr %q has %q", stderr, tt.notContains)
			}
			if strings.Contains(stderr, sent) {
				t.Errorf("stderr shows the token: %q", stderr)
			}
		})
	}
}

// maintenance add prints the window, and the server's warnings on stderr.
func TestMaintenanceAddPrintsWarnings(t *testing.T) {
	t.Setenv(config.EnvAdminToken, "admin-token-0123456789ab")
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"w1","region":"eu-wset","until":"2030-01-01T00:00:00Z","reason":"swap",` +
			`"warnings":["no host has reported in region \"eu-wset\": the window covers nothing until one does; check the name"]}`))
	}))
	defer api.Close()
	code, stdout, stderr := runCLI("maintenance", "add", "--server", api.URL, "--region", "eu-wset", "--for", "2h", "--reason", "swap")
	if code != 0 || !strings.Contains(stdout, "window w1: region eu-wset") ||
		!strings.Contains(stderr, `warning: no host has reported in region "eu-wset"`) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, _, stderr = runCLI("maintenance", "add", "--server", api.URL, "--region", "eu", "--for", "-2h", "--reason", "swap")
	if code != 2 || !strings.Contains(stderr, "--for must be positive") {
		t.Errorf("--for -2h: exit %d, stderr %q", code, stderr)
	}
}

// TestClientCommandsTrustCAFile: a server behind a private CA is reached
// with --ca-file or HEALTHROUTER_CA_FILE, and refused without it.
func TestClientCommandsTrustCAFile(t *testing.T) {
	api := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"windows":[{"id":"w1","region":"eu","until":"2030-01-01T00:00:00Z","reason":"drain"}]}`))
	}))
	api.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	api.StartTLS()
	defer api.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     string // HEALTHROUTER_CA_FILE
		args    []string
		code    int
		wantErr string
	}{
		{"flag", "", []string{"--ca-file", caFile}, 0, ""},
		{"environment", caFile, nil, 0, ""},
		{"no CA: the certificate is refused", "", nil, 1, "certificate signed by unknown authority"},
		{"not PEM", "", []string{"--ca-file", os.Args[0]}, 1, "--ca-file: CA file " + os.Args[0] + " holds no PEM certificate"},
		{"missing file", "", []string{"--ca-file", caFile + ".gone"}, 1, "--ca-file: CA file: open "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envCAFile, tt.env)
			code, stdout, stderr := runCLI(append([]string{"maintenance", "list", "--server", api.URL}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.wantErr)
			}
			if tt.code == 0 && !strings.Contains(stdout, "w1") {
				t.Fatalf("stdout %q, want the window listed", stdout)
			}
		})
	}
}
