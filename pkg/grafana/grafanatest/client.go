package grafanatest

import (
	"encoding/json"
	"io"
	"net/url"

	"github.com/go-openapi/runtime"
	httptransport "github.com/go-openapi/runtime/client"
	goapi "github.com/grafana/grafana-openapi-client-go/client"
)

// Client returns a grafana-openapi-client-go client for the server,
// authenticated with its token: what a person editing Grafana by hand does,
// in tests. It uses the server's own HTTP client (the generated
// constructor would modify http.DefaultTransport).
func (s *Server) Client() *goapi.GrafanaHTTPAPI {
	u, _ := url.Parse(s.URL)
	rt := httptransport.NewWithClient(u.Host, goapi.DefaultBasePath, []string{u.Scheme}, s.srv.Client())
	rt.Debug = false // the field: SetDebug also writes a package global
	rt.DefaultAuthentication = httptransport.BearerToken(s.Token)
	rt.Consumers[runtime.JSONMime] = runtime.ConsumerFunc(func(r io.Reader, v any) error {
		return json.NewDecoder(r).Decode(v)
	})
	return goapi.New(rt, &goapi.TransportConfig{Host: u.Host, BasePath: goapi.DefaultBasePath}, nil)
}
