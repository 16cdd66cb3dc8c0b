package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
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
