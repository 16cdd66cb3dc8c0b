package server

import (
	"net/http"
	"strings"
	"testing"
)

// The profiles are served in place, never redirected (routed without its
// trailing slash, a redirect would loop), and only to the admin.
func TestProfilesForTheAdminOnly(t *testing.T) {
	ts := newTestServer(t, true)
	tests := []struct {
		path, token string
		want        int
		body        string // a substring of a 200 body
	}{
		{"/debug/pprof/", adminToken, http.StatusOK, "heap"},
		{"/debug/pprof", adminToken, http.StatusOK, "goroutine"},
		{"/debug/pprof/heap", adminToken, http.StatusOK, ""},
		{"/debug/pprof/goroutine?debug=1", adminToken, http.StatusOK, "goroutine profile"},
		{"/debug/pprof/allocs", adminToken, http.StatusOK, ""},
		{"/debug/pprof/cmdline", adminToken, http.StatusOK, ""},
		{"/debug/pprof/symbol", adminToken, http.StatusOK, "num_symbols"},
		{"/debug/pprof/nosuchprofile", adminToken, http.StatusNotFound, ""},
		{"/debug/pprof/", ingestToken, http.StatusForbidden, ""},
		{"/debug/pprof", ingestToken, http.StatusForbidden, ""},
		{"/debug/pprof/heap", ingestToken, http.StatusForbidden, ""},
		{"/debug/pprof/profile", ingestToken, http.StatusForbidden, ""},
		{"/debug/pprof/heap", "not-a-token-of-this-server", http.StatusUnauthorized, ""},
		{"/debug/pprof/trace", "", http.StatusUnauthorized, ""},
		{"/debug/vars", adminToken, http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		var opts []reqOpt
		if tt.token != "" {
			opts = append(opts, withToken(tt.token))
		}
		resp, data := ts.do(t, http.MethodGet, tt.path, nil, opts...)
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s: %d (Location %q), want %d", tt.path, resp.StatusCode, resp.Header.Get("Location"), tt.want)
			continue
		}
		if tt.body != "" && !strings.Contains(string(data), tt.body) {
			t.Errorf("GET %s: body lacks %q", tt.path, tt.body)
		}
	}
}
