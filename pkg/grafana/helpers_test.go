package grafana

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/grafana/grafanatest"
	"github.com/healthrouter/healthrouter/pkg/internal/fakeclock"
)

// Routing keys used by the tests: 32 hex digits, like PagerDuty's.
const (
	keyDefault = "0123456789abcdef0123456789abcdef"
	keyStorage = "fedcba9876543210fedcba9876543210"
)

// t0 is the tests' "now".
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

const baseConfig = `
external_url: https://healthrouter.example.com
grafana:
  url: %s
  folder_uid: healthrouter
  folder_title: Health checks
  datasource_uid: prometheus
  interval: 1m
  pending: {host: 2m, region: 1m}
  reconcile_every: 5m
%s
pagerduty:
  routing_keys: {default: HR_PD_DEFAULT, storage: HR_PD_STORAGE}
  routes: [{match: {team: storage}, key: storage}]
%s
`

// testEnv is the environment the configs are loaded with.
func testEnv(srv *grafanatest.Server) map[string]string {
	return map[string]string{
		config.EnvGrafanaToken: srv.Token,
		"HR_PD_DEFAULT":        keyDefault,
		"HR_PD_STORAGE":        keyStorage,
	}
}

// loadConfig loads baseConfig with extra grafana and pagerduty keys.
func loadConfig(t testing.TB, url, grafanaExtra, pagerdutyExtra string, env map[string]string) *config.Config {
	t.Helper()
	indent := func(s string) string {
		if s == "" {
			return ""
		}
		lines := strings.Split(strings.TrimSpace(s), "\n")
		for i := range lines {
			lines[i] = "  " + strings.TrimSpace(lines[i])
		}
		return strings.Join(lines, "\n")
	}
	data := fmt.Sprintf(baseConfig, url, indent(grafanaExtra), indent(pagerdutyExtra))
	cfg, err := config.Parse([]byte(data), func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config: %v\n%s", err, data)
	}
	return cfg
}

// fixture is a fake Grafana and a reconciler pointed at it.
type fixture struct {
	srv  *grafanatest.Server
	cfg  *config.Config
	r    *Reconciler
	clk  *fakeclock.Clock
	logs *observer.ObservedLogs
	reg  *prometheus.Registry
}

type fixtureOpts struct {
	grafana, pagerduty string
	env                map[string]string
	opts               []Option
	httpTimeout        time.Duration
}

func newFixture(t testing.TB, fo fixtureOpts) *fixture {
	t.Helper()
	srv := grafanatest.New()
	t.Cleanup(srv.Close)
	env := fo.env
	if env == nil {
		env = testEnv(srv)
	}
	f := &fixture{srv: srv, clk: fakeclock.New(t0), reg: prometheus.NewRegistry()}
	f.cfg = loadConfig(t, srv.URL, fo.grafana, fo.pagerduty, env)
	f.r = f.newReconciler(t, fo)
	return f
}

func (f *fixture) newReconciler(t testing.TB, fo fixtureOpts) *Reconciler {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	f.logs = logs
	hc := f.srv.HTTPClient()
	if fo.httpTimeout > 0 {
		hc = &http.Client{Transport: hc.Transport, Timeout: fo.httpTimeout}
	}
	f.reg = prometheus.NewRegistry()
	opts := append([]Option{WithClock(f.clk), WithHTTPClient(hc)}, fo.opts...)
	r, err := New(f.cfg, zap.New(core), f.reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func regions(names ...string) []Region {
	out := make([]Region, len(names))
	for i, n := range names {
		out[i] = Region{Name: n, LastSeen: t0}
	}
	return out
}

func (f *fixture) apply(t testing.TB, rs []Region) *Plan {
	t.Helper()
	p, err := f.r.Apply(context.Background(), rs)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return p
}

// assertNoWrites applies again and fails if anything was written.
func (f *fixture) assertNoWrites(t testing.TB, rs []Region) {
	t.Helper()
	f.srv.ResetLog()
	p := f.apply(t, rs)
	if n := f.srv.Writes(); n != 0 || !p.Empty() {
		t.Fatalf("apply over an up-to-date Grafana wrote %d times:\n%s\nrequests: %v", n, p, f.srv.Requests())
	}
}

// metricValue reads a counter or gauge from the registry.
func (f *fixture) metricValue(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

// staticRegions is a RegionSource tests can change.
type staticRegions struct {
	mu sync.Mutex
	rs []Region
}

func (s *staticRegions) Regions() []Region {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Region(nil), s.rs...)
}

func (s *staticRegions) add(r Region) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rs = append(s.rs, r)
}
