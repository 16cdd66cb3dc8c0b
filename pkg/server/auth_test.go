package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// With the admin token as the only token configured the server is not in
// the token-less mode: it listens on loopback only, but every endpoint
// behind a token, ingest and reads included, needs the admin token, and a
// request without it is asked for one (401), whatever it asks for.
func TestAdminTokenOnly(t *testing.T) {
	ts := newTestServer(t, true, func(c *config.Config) { c.Auth.IngestTokens = nil })
	batch := jsonArray(event("web-1.eu-west.example.com", "eu-west", "disk", "passing"))
	window := []byte(`{"region":"eu-west","until":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `","reason":"drain"}`)
	tests := []struct {
		method, path string
		body         []byte
		auth         string // the Authorization header, if any
		want         int
	}{
		{"POST", "/v1/maintenance", window, "", http.StatusUnauthorized},
		{"DELETE", "/v1/hosts/x", nil, "", http.StatusUnauthorized},
		{"GET", "/debug/pprof/", nil, "", http.StatusUnauthorized},
		{"POST", "/v1/events", batch, "", http.StatusUnauthorized},
		{"GET", "/v1/alerts", nil, "", http.StatusUnauthorized},
		{"GET", "/v1/alerts", nil, "Bearer " + ingestToken, http.StatusUnauthorized}, // a token of another server
		{"GET", "/v1/alerts", nil, "Basic " + adminToken, http.StatusUnauthorized},

		{"POST", "/v1/maintenance", window, "Bearer " + adminToken, http.StatusCreated},
		{"DELETE", "/v1/hosts/x", nil, "Bearer " + adminToken, http.StatusNotFound}, // reached: no such host
		{"GET", "/debug/pprof/", nil, "Bearer " + adminToken, http.StatusOK},
		{"POST", "/v1/events", batch, "Bearer " + adminToken, http.StatusOK},
		{"GET", "/v1/alerts", nil, "Bearer " + adminToken, http.StatusOK},
		// The scheme is case-insensitive (RFC 7235 §2.1) and spaces around
		// the token are not part of it.
		{"GET", "/v1/alerts", nil, "bearer " + adminToken, http.StatusOK},
		{"GET", "/v1/alerts", nil, "BEARER " + adminToken, http.StatusOK},
		{"GET", "/v1/alerts", nil, "Bearer   " + adminToken + "  ", http.StatusOK},

		// Open to all, as on every server: probes and scrapes carry no token.
		{"GET", "/healthz", nil, "", http.StatusOK},
		{"GET", "/readyz", nil, "", http.StatusOK},
		{"GET", "/metrics", nil, "", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+redactAuth(tt.auth), func(t *testing.T) {
			var opts []reqOpt
			if tt.auth != "" {
				opts = append(opts, func(r *http.Request) { r.Header.Set("Authorization", tt.auth) })
			}
			resp, data := ts.do(t, tt.method, tt.path, tt.body, opts...)
			if resp.StatusCode != tt.want {
				t.Fatalf("%d %s, want %d", resp.StatusCode, data, tt.want)
			}
			if tt.want == http.StatusUnauthorized {
				if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="healthrouter"` {
					t.Errorf("WWW-Authenticate %q, want a plain bearer challenge", got)
				}
				if !strings.Contains(string(data), "missing or invalid bearer token") {
					t.Errorf("body %s", data)
				}
			}
		})
	}
}

// redactAuth names an Authorization header in a subtest's name without
// its token.
func redactAuth(h string) string {
	switch {
	case h == "":
		return "no token"
	case strings.Contains(h, adminToken):
		return "admin token " + strings.ReplaceAll(h, adminToken, "…")
	default:
		return "other " + strings.Fields(h)[0]
	}
}

func TestTokenSetMatch(t *testing.T) {
	ts := newTokenSet(ingestToken, "", otherToken)
	tests := []struct {
		header string
		want   bool
	}{
		{"Bearer " + ingestToken, true},
		{"Bearer " + otherToken, true},
		{"bearer " + ingestToken, true},
		{"BeArEr " + ingestToken, true},
		{"Bearer  " + ingestToken + " ", true},
		{"Bearer " + ingestToken + "x", false},
		{"Bearer " + ingestToken[:len(ingestToken)-1], false},
		{"Bearer " + adminToken, false},
		{"Bearer" + ingestToken, false},
		{"Bearer\t" + ingestToken, false},
		{"Basic " + ingestToken, false},
		{ingestToken, false},
		{"Bearer ", false},
		{"Bearer    ", false}, // an empty token, though one configured was ""
		{"", false},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		if got := ts.match(r); got != tt.want {
			t.Errorf("match(Authorization: %q) = %v, want %v", tt.header, got, tt.want)
		}
	}
	if (tokenSet{}).match(&http.Request{Header: http.Header{"Authorization": {"Bearer "}}}) {
		t.Error("an empty token set matched")
	}
}
