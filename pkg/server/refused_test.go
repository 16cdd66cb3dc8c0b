package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// TestRefusedRequestsCountedAndLogged: every ingest request refused for
// what it is (413, 415), which Vector drops without retry, is counted by
// reason and logged at warn with the sender and the limit it passed,
// never with a token; a repeat within the sampling interval is counted
// but not logged again.
func TestRefusedRequestsCountedAndLogged(t *testing.T) {
	var many []string
	for i := range 11 {
		many = append(many, event(fmt.Sprintf("web-%d.eu-west.example.com", i), "eu-west", "disk", "passing"))
	}
	tooBig := bytes.Repeat([]byte("x"), 65<<10)
	tests := []struct {
		name      string
		body      []byte
		chunked   bool // no Content-Length: refused while reading
		encoding  string
		reason    string
		wantField string // the limit, or what was refused
	}{
		{"announced past max_body_bytes", tooBig, false, "", "too_large", "ingest.max_body_bytes=65536"},
		{"chunked past max_body_bytes", tooBig, true, "", "too_large", "ingest.max_body_bytes=65536"},
		{"decompression bomb", gz(t, bytes.Repeat([]byte(" "), 2<<20)), false, "gzip", "decoded_too_large", "ingest.max_decoded_bytes=1048576"},
		{"too many events", jsonArray(many...), false, "", "too_many_events", "ingest.max_events=10"},
		{"unknown encoding", jsonArray(many[0]), false, "br", "unsupported_encoding", "br"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, true, func(c *config.Config) {
				c.Ingest.MaxBodyBytes = 64 << 10
				c.Ingest.MaxDecodedBytes = 1 << 20
				c.Ingest.MaxEvents = 10
			})
			post := func() int {
				var body io.Reader = bytes.NewReader(tt.body)
				if tt.chunked {
					body = unsized{body}
				}
				req, err := http.NewRequest(http.MethodPost, ts.URL+"/v1/events", body)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+ingestToken)
				if tt.encoding != "" {
					req.Header.Set("Content-Encoding", tt.encoding)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}
			for i := 1; i <= 2; i++ {
				if code := post(); code != http.StatusRequestEntityTooLarge && code != http.StatusUnsupportedMediaType {
					t.Fatalf("request %d answered %d, want 413 or 415", i, code)
				}
				want := fmt.Sprintf(`healthrouter_ingest_refused_requests_total{reason=%q} %d`, tt.reason, i)
				if m := metrics(t, ts); !strings.Contains(m, want) {
					t.Errorf("after request %d /metrics lacks %s:\n%s", i, want,
						strings.Join(seriesOf(m, "healthrouter_ingest_refused_requests_total"), "\n"))
				}
			}
			logged := ts.logs.FilterMessageSnippet("ingest request refused").All()
			if len(logged) != 1 {
				t.Fatalf("logged %d refusals, want 1 (the repeat is sampled out)", len(logged))
			}
			e := logged[0]
			fields := e.ContextMap()
			if e.Level != zap.WarnLevel || fields["reason"] != tt.reason || !strings.HasPrefix(fmt.Sprint(fields["remote"]), "127.0.0.1:") {
				t.Errorf("logged %v %v, want warn with reason %s and the sender's address", e.Level, fields, tt.reason)
			}
			if got := fmt.Sprint(fields["limit"], fields["content_encoding"]); !strings.Contains(got, tt.wantField) {
				t.Errorf("logged %v, want it to name %s", fields, tt.wantField)
			}
			if s := fmt.Sprint(fields); strings.Contains(s, ingestToken) {
				t.Errorf("the token was logged: %s", s)
			}
		})
	}
}
