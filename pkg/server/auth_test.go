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

// Without any token the loopback listener is the only guard, and a web page
// in a local browser can reach it: requests that carry a browser's marks
// (a cross-site Origin or Sec-Fetch-Site) or name a host that is not a
// loopback address (DNS rebinding) are refused; programs are served.
func TestTokenlessModeRefusesBrowsers(t *testing.T) {
	open := newTestServer(t, true, func(c *config.Config) { c.Auth.IngestTokens, c.Auth.AdminToken = nil, "" })
	withTokens := newTestServer(t, true)
	batch := jsonArray(event("web-1.eu-west.example.com", "eu-west", "disk", "passing"))
	window := []byte(`{"region":"eu-west","until":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `","reason":"drain"}`)
	header := func(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }
	host := func(h string) reqOpt { return func(r *http.Request) { r.Host = h } }
	tests := []struct {
		name         string
		method, path string
		body         []byte
		opt          reqOpt
		want         int
	}{
		{"a program ingests", "POST", "/v1/events", batch, nil, http.StatusOK},
		{"a program reads", "GET", "/v1/alerts", nil, nil, http.StatusOK},
		{"a program names localhost", "GET", "/v1/alerts", nil, host("localhost:8080"), http.StatusOK},
		{"a program names ::1", "GET", "/v1/alerts", nil, host("[::1]:8080"), http.StatusOK},
		{"a page posts a window across sites", "POST", "/v1/maintenance", window, header("Origin", "http://evil.example"), http.StatusForbidden},
		{"a page posts events across sites", "POST", "/v1/events", batch, header("Sec-Fetch-Site", "cross-site"), http.StatusForbidden},
		{"a rebound name reads alerts", "GET", "/v1/alerts", nil, host("evil.example:8080"), http.StatusForbidden},
		{"a rebound name reads profiles", "GET", "/debug/pprof/", nil, host("evil.example"), http.StatusForbidden},
		{"probes answer whatever the host", "GET", "/healthz", nil, host("evil.example"), http.StatusOK},
		{"a rebound name scrapes metrics", "GET", "/metrics", nil, host("evil.example"), http.StatusForbidden},
		{"a rebound name reads readyz", "GET", "/readyz", nil, host("evil.example:8080"), http.StatusForbidden},
		{"a local scrape", "GET", "/metrics", nil, host("127.0.0.1:9090"), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []reqOpt
			if tt.opt != nil {
				opts = append(opts, tt.opt)
			}
			resp, data := open.do(t, tt.method, tt.path, tt.body, opts...)
			if resp.StatusCode != tt.want {
				t.Fatalf("%d %s, want %d", resp.StatusCode, data, tt.want)
			}
			if tt.want == http.StatusForbidden && !strings.Contains(string(data), "this server serves only programs on its own host") {
				t.Errorf("body %s does not say why", data)
			}
		})
	}
	// With tokens a page cannot send the Authorization header across
	// sites, and the checks are not needed: the token decides.
	resp, data := withTokens.do(t, "POST", "/v1/events", batch, withToken(ingestToken), header("Origin", "http://evil.example"), host("hr.example.net"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with tokens: %d %s, want 200", resp.StatusCode, data)
	}
	if resp, data := withTokens.do(t, "GET", "/metrics", nil, host("hr.example.net")); resp.StatusCode != http.StatusOK {
		t.Fatalf("a scrape by name with tokens configured: %d %s, want 200", resp.StatusCode, data)
	}
	// An admin token alone guards /v1 and /debug; serve still holds the
	// server to loopback, and the open endpoints keep the rebinding guard.
	adminOnly := newTestServer(t, true, func(c *config.Config) { c.Auth.IngestTokens = nil })
	for _, path := range []string{"/metrics", "/readyz"} {
		if resp, data := adminOnly.do(t, "GET", path, nil, host("evil.example")); resp.StatusCode != http.StatusForbidden {
			t.Errorf("admin token only, a rebound name reads %s: %d %s, want 403", path, resp.StatusCode, data)
		}
		if resp, data := adminOnly.do(t, "GET", path, nil, host("127.0.0.1:8080")); resp.StatusCode != http.StatusOK {
			t.Errorf("admin token only, a local read of %s: %d %s, want 200", path, resp.StatusCode, data)
		}
	}
}
