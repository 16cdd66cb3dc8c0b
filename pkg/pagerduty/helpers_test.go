package pagerduty

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/internal/fakeclock"
	"github.com/healthrouter/healthrouter/pkg/pagerduty/pagerdutytest"
	"github.com/healthrouter/healthrouter/pkg/store"
)

// Routing keys of the tests: 32 alphanumerics, as PagerDuty wants.
const (
	keyDefault = "R0ut1ngKeyDefault000000000000001"
	keyStorage = "R0ut1ngKeyStorage000000000000002"
	apiToken   = "u+TestApiToken0123456789"
)

var secrets = []string{keyDefault, keyStorage, apiToken}

func testConfig(url string) *config.PagerDuty {
	return &config.PagerDuty{
		RoutingKeys:   map[string]string{"default": "HEALTHROUTER_PD_DEFAULT", "storage": "HEALTHROUTER_PD_STORAGE"},
		Routes:        []config.Route{{Match: map[string]string{"team": "storage"}, Key: "storage"}},
		EventsURL:     url,
		APIURL:        url,
		FallbackAfter: config.Duration(3 * time.Minute),
		RatePerMinute: 120,
		Warning:       "low",
		Timeout:       config.Duration(5 * time.Second),
		Keys:          map[string]config.Secret{"default": keyDefault, "storage": keyStorage},
		APIToken:      apiToken,
	}
}

func newFakePD(t *testing.T, opts ...pagerdutytest.Option) *pagerdutytest.Server {
	t.Helper()
	opts = append([]pagerdutytest.Option{pagerdutytest.WithRoutingKeys(keyDefault, keyStorage), pagerdutytest.WithAPIToken(apiToken)}, opts...)
	s := pagerdutytest.New(opts...)
	t.Cleanup(s.Close)
	return s
}

// testStore is a real store in a temporary directory that a test can close
// and reopen, as a restart does.
type testStore struct {
	t   testing.TB
	dir string
	s   *store.Store
}

func newTestStore(t testing.TB) *testStore {
	ts := &testStore{t: t, dir: t.TempDir()}
	ts.open()
	t.Cleanup(func() {
		if ts.s != nil {
			_ = ts.s.Close()
		}
	})
	return ts
}

func (ts *testStore) open() {
	ts.t.Helper()
	s, err := store.Open(ts.dir, store.Options{})
	if err != nil {
		ts.t.Fatalf("open store: %v", err)
	}
	ts.s = s
}

func (ts *testStore) reopen() {
	ts.t.Helper()
	if err := ts.s.Close(); err != nil {
		ts.t.Fatalf("close store: %v", err)
	}
	ts.open()
}

func (ts *testStore) queue(name string) *store.Queue {
	ts.t.Helper()
	q, err := ts.s.Queue(name)
	if err != nil {
		ts.t.Fatal(err)
	}
	return q
}

func (ts *testStore) kv(name string) *store.KV {
	ts.t.Helper()
	kv, err := ts.s.KV(name)
	if err != nil {
		ts.t.Fatal(err)
	}
	return kv
}

func newFakeClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
}

// waitFor polls cond in real time, for outcomes driven by real I/O.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func observedLogger() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.DebugLevel)
	return zap.New(core), logs
}

// assertNoSecrets fails when any routing key or token shows in text.
func assertNoSecrets(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s contains a secret: %q", where, text)
		}
	}
}

// assertLogsClean checks every logged message and field for secrets.
func assertLogsClean(t *testing.T, logs *observer.ObservedLogs) {
	t.Helper()
	for _, e := range logs.All() {
		assertNoSecrets(t, "log message", e.Message)
		for k, v := range e.ContextMap() {
			assertNoSecrets(t, "log field "+k, fmt.Sprint(v))
		}
	}
}

// assertMetricsClean checks every metric name and label for secrets.
func assertMetricsClean(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		assertNoSecrets(t, "metric name", mf.GetName())
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				assertNoSecrets(t, "metric label", lp.GetName()+"="+lp.GetValue())
			}
		}
	}
}

// metricValue reads a counter or gauge with exactly these labels (0 when
// absent).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsEqual(m.GetLabel(), labels) {
				switch {
				case m.Counter != nil:
					return m.GetCounter().GetValue()
				case m.Gauge != nil:
					return m.GetGauge().GetValue()
				case m.Histogram != nil:
					return float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return 0
}

func labelsEqual(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, lp := range got {
		if want[lp.GetName()] != lp.GetValue() {
			return false
		}
	}
	return true
}

func eventsTotal(t *testing.T, reg *prometheus.Registry, action, result string) float64 {
	return metricValue(t, reg, "healthrouter_pagerduty_events_total", map[string]string{"action": action, "result": result})
}

func hostAlert(region, host string, sev health.Severity) health.Alert {
	return health.Alert{Level: health.LevelHost, Region: region, Host: host, Severity: sev, Value: 1,
		Since: time.Date(2025, 6, 1, 11, 0, 0, 0, time.UTC), Checks: []string{"disk"}, Summary: host + ": disk " + sev.String()}
}
