package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// Host names are the events' own: whatever bytes a check sends, escaped in
// the path, must reach the host they name, for reading and for forgetting.
func TestHostNamesNeedingEscapes(t *testing.T) {
	ts := newTestServer(t, true)
	hosts := []string{"a/b", "rack 7/slot%3", "web?1#2", "ünï/côde", "plain-1"}
	var evs []string
	for _, h := range hosts {
		evs = append(evs, event(h, "eu-west", "disk", "passing"))
	}
	if resp, res := ts.post(t, jsonArray(evs...)); resp.StatusCode != 200 || res.Accepted != len(hosts) {
		t.Fatalf("post: %d %+v", resp.StatusCode, res)
	}
	for _, h := range hosts {
		t.Run(h, func(t *testing.T) {
			path := "/v1/hosts/" + url.PathEscape(h)
			for _, p := range []string{path, path + "/"} {
				resp, data := ts.do(t, http.MethodGet, p, nil, withToken(ingestToken))
				var got struct{ Host string }
				if resp.StatusCode != 200 || json.Unmarshal(data, &got) != nil || got.Host != h {
					t.Fatalf("GET %s: %d %s, want 200 for host %q", p, resp.StatusCode, data, h)
				}
			}
			resp, data := ts.do(t, http.MethodDelete, path, nil, withToken(adminToken))
			var forgot ForgetResponse
			if resp.StatusCode != 200 || json.Unmarshal(data, &forgot) != nil || forgot.Host != h || len(forgot.Forgotten) != 1 {
				t.Fatalf("DELETE %s: %d %s", path, resp.StatusCode, data)
			}
			if resp, _ := ts.do(t, http.MethodGet, path, nil, withToken(ingestToken)); resp.StatusCode != 404 {
				t.Fatalf("GET %s after forgetting: %d, want 404", path, resp.StatusCode)
			}
		})
	}
	// "a/b" unescaped is two segments: no route, not host "a/b".
	if resp, _ := ts.do(t, http.MethodGet, "/v1/hosts/a/b", nil, withToken(ingestToken)); resp.StatusCode != 404 {
		t.Errorf("GET /v1/hosts/a/b: %d, want 404", resp.StatusCode)
	}
}

// net/http refuses a malformed escape before routing; pathParam still must
// not hand one on.
func TestPathParamRefusesBadEscapes(t *testing.T) {
	tests := []struct {
		raw, want string
		code      int
	}{
		{"a%2Fb", "a/b", 0},
		{"50%25", "50%", 0},
		{"a%zz", "", http.StatusBadRequest},
		{"trailing%", "", http.StatusBadRequest},
	}
	for _, tt := range tests {
		rctx := chi.NewRouteContext()
		rctx.URLParams.Add("host", tt.raw)
		r := httptest.NewRequest(http.MethodGet, "/v1/hosts/x", nil)
		r = r.WithContext(context.WithValue(r.Context(), chi.RouteCtxKey, rctx))
		w := httptest.NewRecorder()
		got, ok := pathParam(w, r, "host")
		if ok != (tt.code == 0) || got != tt.want || (tt.code != 0 && w.Code != tt.code) {
			t.Errorf("pathParam(%q) = %q, %v (status %d), want %q, code %d", tt.raw, got, ok, w.Code, tt.want, tt.code)
		}
	}
}

// HEAD is answered wherever GET is, with GET's status and headers and no
// body; unknown paths are echoed capped.
func TestHeadAndNotFound(t *testing.T) {
	ts := newTestServer(t, true)
	heads := []struct {
		path  string
		token string
		want  int
	}{
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/metrics", "", 200},
		{"/v1/alerts", ingestToken, 200},
		{"/v1/hosts", ingestToken, 200},
		{"/v1/hosts", "", 401},
		{"/v1/maintenance/", ingestToken, 200},
		{"/v1/events", ingestToken, 405}, // POST only
		{"/v2/nothing", "", 404},
	}
	for _, h := range heads {
		var opts []reqOpt
		if h.token != "" {
			opts = append(opts, withToken(h.token))
		}
		resp, data := ts.do(t, http.MethodHead, h.path, nil, opts...)
		if resp.StatusCode != h.want || len(data) != 0 {
			t.Errorf("HEAD %s: %d with %d body bytes, want %d and none", h.path, resp.StatusCode, len(data), h.want)
		}
	}

	long := "/" + strings.Repeat("x", 60<<10)
	resp, data := ts.do(t, http.MethodGet, long, nil)
	if resp.StatusCode != 404 || len(data) > 2*maxEchoedPath || !strings.Contains(string(data), "/xxx") {
		t.Errorf("GET of a 60 KB path: %d with %d bytes, want 404 echoing at most %d bytes", resp.StatusCode, len(data), maxEchoedPath)
	}
	resp, data = ts.do(t, http.MethodPut, long, nil)
	if resp.StatusCode != 404 || len(data) > 2*maxEchoedPath {
		t.Errorf("PUT of a 60 KB path: %d with %d bytes", resp.StatusCode, len(data))
	}
}

func TestCapText(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 8, "short"},
		{"exactly8", 8, "exactly8"},
		{"longer than eight", 8, "longer t..."},
		{"ab\u00e9cd", 3, "ab..."}, // never half of é
		{"", 4, ""},
	}
	for _, tt := range tests {
		if got := capText(tt.in, tt.n); got != tt.want {
			t.Errorf("capText(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// A token that authenticates but cannot open an admin endpoint is told so
// (403), not asked for a token again (401).
func TestAdminRefusals(t *testing.T) {
	ts := newTestServer(t, true)
	noAdmin := newTestServer(t, true, func(c *config.Config) { c.Auth.AdminToken = "" })
	tests := []struct {
		name   string
		srv    *testServer
		method string
		path   string
		token  string
		want   int
		msg    string
	}{
		{"ingest token on a write", ts, "DELETE", "/v1/maintenance/abc", ingestToken, 403, "needs the admin token; an ingest token is not enough"},
		{"ingest token on profiles", ts, "GET", "/debug/pprof/heap", ingestToken, 403, "an ingest token is not enough"},
		{"wrong token on a write", ts, "DELETE", "/v1/maintenance/abc", "not-a-token", 401, "missing or invalid bearer token"},
		{"no token on a write", ts, "DELETE", "/v1/maintenance/abc", "", 401, "missing or invalid bearer token"},
		{"admin token", ts, "DELETE", "/v1/maintenance/abc", adminToken, 404, "no active maintenance window"},
		{"none configured, write", noAdmin, "DELETE", "/v1/maintenance/abc", ingestToken, 403, "needs the admin token, and this server has none: restart it with"},
		{"none configured, profiles", noAdmin, "GET", "/debug/pprof/heap", ingestToken, 403, "needs the admin token, and this server has none: restart it with"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []reqOpt
			if tt.token != "" {
				opts = append(opts, withToken(tt.token))
			}
			resp, data := tt.srv.do(t, tt.method, tt.path, nil, opts...)
			if resp.StatusCode != tt.want || !strings.Contains(string(data), tt.msg) {
				t.Errorf("%s %s: %d %s, want %d with %q", tt.method, tt.path, resp.StatusCode, data, tt.want, tt.msg)
			}
			if strings.Contains(string(data), "writes need") {
				t.Errorf("message speaks of writes: %s", data)
			}
		})
	}
}

func TestUnprintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"drain for disk swap", ""},
		{"é ünï 日本", ""},
		{"", ""},
		{"a\x00b", `contains control character '\x00'`},
		{"tab\there", `contains control character '\t'`},
		{"\x1b[31mred", `contains control character '\x1b'`},
		{"del\x7f", `contains control character '\x7f'`},
		{"bad \xff utf8", "is not valid UTF-8"},
	}
	for _, tt := range tests {
		if got := unprintable(tt.in); got != tt.want {
			t.Errorf("unprintable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestMethodNotAllowedListsAllow: a 405 names the methods the path takes
// (RFC 9110), on the top-level routes and under /v1 alike; answers are
// never sniffed as anything but JSON; a 404 repeats the path as routing
// saw it.
func TestMethodNotAllowedListsAllow(t *testing.T) {
	ts := newTestServer(t, true)
	tests := []struct{ method, path, allow string }{
		{"PUT", "/v1/alerts", "GET, HEAD"},
		{"GET", "/v1/events", "POST"},
		{"DELETE", "/healthz", "GET, HEAD"},
		{"POST", "/v1/maintenance/abc", "DELETE"},
		{"PATCH", "/v1/maintenance", "GET, HEAD, POST"},
	}
	for _, tt := range tests {
		resp, data := ts.do(t, tt.method, tt.path, nil, withToken(adminToken))
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d, Allow %q (%s); want 405 with Allow %q", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Allow"), data, tt.allow)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: no X-Content-Type-Options: nosniff", tt.method, tt.path)
		}
	}
	resp, data := ts.do(t, "GET", "/%68ealthz", nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(data), `no such endpoint: /%68ealthz`) {
		t.Errorf("GET /%%68ealthz: %d %s, want 404 naming the path as sent", resp.StatusCode, data)
	}
	big := []byte(`{"region":"eu","reason":"` + strings.Repeat("x", 20<<10) + `"}`)
	if resp, data := ts.do(t, "POST", "/v1/maintenance", big, withToken(adminToken)); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized window: %d %s, want 413", resp.StatusCode, data)
	}
}
