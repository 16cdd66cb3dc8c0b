package grafana

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/ingest"
	"github.com/healthrouter/healthrouter/pkg/pagerduty"
	"github.com/healthrouter/healthrouter/pkg/server"
	"github.com/healthrouter/healthrouter/pkg/store"
	"github.com/healthrouter/healthrouter/pkg/tracker"
)

// TestDashboard checks grafana/dashboards/healthrouter.json: it parses,
// panel ids are unique, every query names a metric healthrouter exports and
// the metrics the dashboard promises are all shown.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile("../../grafana/dashboards/healthrouter.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
			GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name    string
				Current struct{ Value string } `json:"current"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID != "healthrouter" {
		t.Errorf("uid %q", dash.UID)
	}
	ids := map[int]bool{}
	var exprs []string
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q does not fit the grid: %+v", p.Title, p.GridPos)
		}
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, "healthrouter_") {
				t.Errorf("panel %q queries %q, not a healthrouter metric", p.Title, tg.Expr)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	registered := registeredMetrics(t)
	for _, e := range exprs {
		for _, name := range metricNameRE.FindAllString(e, -1) {
			if !registered[name] && !registered[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")] {
				t.Errorf("the dashboard queries %s, which healthrouter does not export", name)
			}
		}
	}
	all := strings.Join(exprs, "\n")
	for _, m := range []string{
		"healthrouter_ingest_events_total", "healthrouter_ingest_rejected_total", "healthrouter_http_request_duration_seconds_bucket",
		"healthrouter_alert", "healthrouter_alert_suppressed", "healthrouter_last_event_timestamp_seconds",
		"healthrouter_grafana_up", "healthrouter_grafana_reconcile_total", "healthrouter_grafana_last_success_timestamp_seconds",
		"healthrouter_grafana_writes_total", "healthrouter_pagerduty_outbox_depth",
		"healthrouter_ingest_refused_requests_total", "healthrouter_pagerduty_rejections_total",
	} {
		if !strings.Contains(all, m) {
			t.Errorf("no panel shows %s", m)
		}
	}
	vars := map[string]bool{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] || !vars["region"] || !vars["paging"] {
		t.Errorf("variables %v, want datasource, region and paging", vars)
	}
	// The page set is shown beside the alert set: the paging severities'
	// share, with the default matching what the rules select.
	pageSet := false
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if strings.Contains(tg.Expr, `healthrouter_alert{`) && strings.Contains(tg.Expr, `severity=~"$paging"`) {
				pageSet = true
			}
		}
	}
	if !pageSet {
		t.Error("no panel shows the page set (healthrouter_alert of the paging severities)")
	}
	for _, v := range dash.Templating.List {
		if v.Name == "paging" && v.Current.Value != strings.Join(pagingSeverities(&config.PagerDuty{}), "|") {
			t.Errorf("paging severities default to %q, the rules page on %v", v.Current.Value, pagingSeverities(&config.PagerDuty{}))
		}
	}
}

// metricNameRE finds healthrouter metric names in a query.
var metricNameRE = regexp.MustCompile(`\bhealthrouter_[a-zA-Z0-9_]*[a-zA-Z0-9]`)

// registeredMetrics builds the metrics healthrouter's packages register, the
// way serve wires them, and returns their names.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf(baseConfig, "http://127.0.0.1:1", "", "")), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	rec := &descRecorder{names: map[string]bool{}}

	st, err := store.Open(cfg.DataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tr, err := tracker.Open(cfg, st, zap.NewNop(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	rec.MustRegister(tr.Metrics())
	if _, err := New(cfg, nil, rec); err != nil {
		t.Fatal(err)
	}
	queue, err := st.Queue("outbox")
	if err != nil {
		t.Fatal(err)
	}
	open, err := st.KV("open")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pagerduty.NewOutbox(cfg.PagerDuty, queue, open, pagerduty.OutboxOptions{Registerer: rec})
	if err != nil {
		t.Fatal(err)
	}
	fb, err := st.KV("fallback")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pagerduty.NewFallback(cfg.PagerDuty, out, fb, pagerduty.FallbackOptions{Registerer: rec}); err != nil {
		t.Fatal(err)
	}

	// The server takes a registry: serve a request so that its vectors
	// have a child to gather.
	reg := prometheus.NewRegistry()
	dec, err := ingest.NewDecoder(cfg.Ingest)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Config: cfg, Decoder: dec, Logger: zap.NewNop(), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/healthz", nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		rec.names[mf.GetName()] = true
	}
	if !rec.names["healthrouter_alert"] || !rec.names["healthrouter_http_request_duration_seconds"] {
		t.Fatalf("registered metrics %v lack the basics", rec.names)
	}
	return rec.names
}

// descRecorder is a Registerer that keeps the names of what is registered
// with it, vectors without children included (a Gather would skip them).
type descRecorder struct{ names map[string]bool }

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *descRecorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqNameRE.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return nil
}

func (r *descRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *descRecorder) Unregister(prometheus.Collector) bool { return false }

// TestProvisioningExamplesParse checks the hand-written provisioning files.
func TestProvisioningExamplesParse(t *testing.T) {
	for _, path := range []string{
		"../../grafana/provisioning/datasources/prometheus.yaml",
		"../../grafana/provisioning/dashboards/healthrouter.yaml",
	} {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		if doc["apiVersion"] != 1 {
			t.Errorf("%s: apiVersion %v", path, doc["apiVersion"])
		}
	}
	// The example datasource is the one the rules query with the default
	// grafana.datasource_uid, as the exported alerting example shows.
	raw, err := os.ReadFile("../../grafana/provisioning/datasources/prometheus.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(raw, &ds); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte("grafana: {}\npagerduty: {routing_keys: {default: PD}}\n"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	want := cfg.Grafana.DatasourceUID
	if len(ds.Datasources) != 1 || ds.Datasources[0].UID != want || ds.Datasources[0].Type != "prometheus" {
		t.Errorf("example datasource %+v, want one prometheus datasource with uid %q", ds.Datasources, want)
	}
	alerting, err := os.ReadFile("../../grafana/provisioning/alerting/healthrouter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(alerting), "datasourceUid: "+want+"\n") {
		t.Errorf("the exported alerting example queries no datasource %q", want)
	}
}
