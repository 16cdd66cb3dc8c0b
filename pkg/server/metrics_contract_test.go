package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// seriesOf returns the exposition lines of the named metric, sorted.
func seriesOf(exposition, name string) []string {
	var out []string
	for _, line := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			out = append(out, line)
		}
	}
	slices.Sort(out)
	return out
}

// TestMetricsContract pins the series DESIGN §3 names, which Grafana's rules
// query: the alert set in healthrouter_alert (a region alert valued at its
// failing-host ratio, a silent host as check="not_reporting"), suppressed
// host checks in healthrouter_alert_suppressed with their reason, and
// healthrouter_check_failing for non-passing checks only.
func TestMetricsContract(t *testing.T) {
	ts := newTestServer(t, true, func(c *config.Config) {
		c.Checks = []config.CheckRule{{Match: "heartbeat", StaleAfter: config.Duration(300 * time.Millisecond)}}
		c.Engine.TickEvery = config.Duration(100 * time.Millisecond) // the test ticks by hand; kept below the rule's stale_after
	})
	const (
		web1 = "web-1.eu-west.example.com"
		web2 = "web-2.eu-west.example.com"
		web3 = "web-3.eu-west.example.com"
		web4 = "web-4.eu-west.example.com"
		db1  = "db-1.us-east.example.com"
	)
	resp, data := ts.do(t, "POST", "/v1/maintenance",
		[]byte(`{"region":"eu-west","host":"`+web4+`","check":"raid","until":"`+time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339)+`","reason":"disk swap"}`),
		withToken(adminToken))
	if resp.StatusCode != 201 {
		t.Fatalf("POST /v1/maintenance: %d %s", resp.StatusCode, data)
	}
	// Two rounds confirm the failures (confirm_after 2): connectivity on
	// 3 of 4 hosts (a region alert, its hosts suppressed by region), raid
	// on web-4 (in maintenance), ntp warning on web-1 (a host alert), and
	// db-1's heartbeat, which then stops.
	for i := 1; i <= 2; i++ {
		var evs []string
		for _, host := range []string{web1, web2, web3, web4} {
			conn, raid := "critical", "passing"
			if host == web4 {
				conn, raid = "passing", "critical"
			}
			evs = append(evs, event(host, "eu-west", "connectivity", conn), event(host, "eu-west", "raid", raid))
		}
		evs = append(evs, event(web1, "eu-west", "ntp", "warning"), event(db1, "us-east", "heartbeat", "passing"))
		body := strings.ReplaceAll(string(jsonArray(evs...)), "10:00:00", fmt.Sprintf("10:00:%02d", i*20))
		if resp, res := ts.post(t, []byte(body)); resp.StatusCode != 200 || res.Rejected != 0 {
			t.Fatalf("post: %d %+v", resp.StatusCode, res)
		}
	}
	time.Sleep(400 * time.Millisecond) // past the heartbeat's stale_after
	if err := ts.tracker.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}

	m := metrics(t, ts)
	tests := []struct {
		metric string
		want   []string
	}{
		{"healthrouter_alert", []string{
			`healthrouter_alert{check="",host="` + web1 + `",level="host",region="eu-west",severity="warning"} 1`,
			`healthrouter_alert{check="connectivity",host="",level="region",region="eu-west",severity="critical"} 0.75`,
			`healthrouter_alert{check="not_reporting",host="` + db1 + `",level="host",region="us-east",severity="critical"} 1`,
		}},
		{"healthrouter_alert_suppressed", []string{
			`healthrouter_alert_suppressed{check="connectivity",host="` + web1 + `",level="host",reason="region",region="eu-west"} 1`,
			`healthrouter_alert_suppressed{check="connectivity",host="` + web2 + `",level="host",reason="region",region="eu-west"} 1`,
			`healthrouter_alert_suppressed{check="connectivity",host="` + web3 + `",level="host",reason="region",region="eu-west"} 1`,
			`healthrouter_alert_suppressed{check="raid",host="` + web4 + `",level="host",reason="maintenance",region="eu-west"} 1`,
		}},
		// Passing checks (web-4's connectivity, the raid of web-1..3, db-1's
		// stale but passing heartbeat) have no series.
		{"healthrouter_check_failing", []string{
			`healthrouter_check_failing{check="connectivity",host="` + web1 + `",region="eu-west",status="critical"} 1`,
			`healthrouter_check_failing{check="connectivity",host="` + web2 + `",region="eu-west",status="critical"} 1`,
			`healthrouter_check_failing{check="connectivity",host="` + web3 + `",region="eu-west",status="critical"} 1`,
			`healthrouter_check_failing{check="ntp",host="` + web1 + `",region="eu-west",status="warning"} 1`,
			`healthrouter_check_failing{check="raid",host="` + web4 + `",region="eu-west",status="critical"} 1`,
		}},
	}
	for _, tt := range tests {
		equalSeries(t, tt.metric, seriesOf(m, tt.metric), tt.want)
	}

	// The host rule's explain link for the silent host carries its region
	// and check="not_reporting"; it explains that alert.
	resp, data = ts.do(t, "GET", "/v1/explain?region=us-east&host="+db1+"&check=not_reporting", nil, withToken(ingestToken))
	var ex struct {
		Found, Pages bool
		Key          struct{ Region string }
	}
	if err := json.Unmarshal(data, &ex); err != nil || resp.StatusCode != 200 || !ex.Found || !ex.Pages || ex.Key.Region != "us-east" {
		t.Fatalf("explain not_reporting: %d %s", resp.StatusCode, data)
	}
	if resp, _ := ts.do(t, "GET", "/v1/explain?region=eu-west&host="+db1, nil, withToken(ingestToken)); resp.StatusCode != 404 {
		t.Fatalf("explain a host in a region it is not in: %d, want 404", resp.StatusCode)
	}
}

func equalSeries(t *testing.T, metric string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s series:\ngot:\n  %s\nwant:\n  %s", metric, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// postRound posts events (rendered by event) as one batch stamped i
// minutes after the events' own 10:00:00, so that successive rounds are
// newer results of the same checks.
func postRound(t *testing.T, ts *testServer, i int, evs ...string) {
	t.Helper()
	body := strings.ReplaceAll(string(jsonArray(evs...)), "10:00:00", fmt.Sprintf("10:%02d:00", i))
	if resp, res := ts.post(t, []byte(body)); resp.StatusCode != 200 || res.Accepted != len(evs) {
		t.Fatalf("round %d: %d %+v, want all %d accepted", i, resp.StatusCode, res, len(evs))
	}
}

// TestMetricsContractSuppressionReasons pins the healthrouter_alert_suppressed
// series TestMetricsContract does not reach: a host check held back because
// it flaps, and a region alert (level="region") held back by a region-wide
// maintenance window, together with the host checks that window covers.
func TestMetricsContractSuppressionReasons(t *testing.T) {
	const (
		web1 = "web-1.eu-west.example.com"
		web2 = "web-2.eu-west.example.com"
		web3 = "web-3.eu-west.example.com"
		web4 = "web-4.eu-west.example.com"
	)
	t.Run("flapping", func(t *testing.T) {
		// confirm_after 1: every critical result is hard at once, so the
		// check would page on each one were it not flapping.
		ts := newTestServer(t, true, func(c *config.Config) { c.Engine.ConfirmAfter = 1 })
		// Alternating results: 8 changes over 9 results weigh 856/1900, under
		// flap.high (0.5); the 9th change, into the 10th result (critical),
		// weighs 954/1900 and starts flapping.
		statuses := []string{"passing", "critical"}
		for i := range 9 {
			postRound(t, ts, i, event(web1, "eu-west", "conntrack", statuses[i%2]), event(web2, "eu-west", "conntrack", "passing"))
		}
		m := metrics(t, ts)
		equalSeries(t, "healthrouter_alert_suppressed before it flaps", seriesOf(m, "healthrouter_alert_suppressed"), nil)
		equalSeries(t, "healthrouter_checks_flapping before it flaps", seriesOf(m, "healthrouter_checks_flapping"), []string{
			`healthrouter_checks_flapping 0`,
		})
		postRound(t, ts, 9, event(web1, "eu-west", "conntrack", "critical"), event(web2, "eu-west", "conntrack", "passing"))

		m = metrics(t, ts)
		tests := []struct {
			metric string
			want   []string
		}{
			{"healthrouter_alert", nil},
			{"healthrouter_alert_suppressed", []string{
				`healthrouter_alert_suppressed{check="conntrack",host="` + web1 + `",level="host",reason="flapping",region="eu-west"} 1`,
			}},
			{"healthrouter_check_failing", []string{
				`healthrouter_check_failing{check="conntrack",host="` + web1 + `",region="eu-west",status="critical"} 1`,
			}},
			{"healthrouter_checks_flapping", []string{`healthrouter_checks_flapping 1`}},
		}
		for _, tt := range tests {
			equalSeries(t, tt.metric, seriesOf(m, tt.metric), tt.want)
		}
	})

	t.Run("region alert in maintenance", func(t *testing.T) {
		ts := newTestServer(t, true)
		// Two rounds confirm connectivity failing on 3 of 4 hosts: a region
		// alert (ratio 0.75, min_hosts 3), its hosts suppressed by region.
		for i := 1; i <= 2; i++ {
			var evs []string
			for _, host := range []string{web1, web2, web3, web4} {
				status := "critical"
				if host == web4 {
					status = "passing"
				}
				evs = append(evs, event(host, "eu-west", "connectivity", status))
			}
			postRound(t, ts, i, evs...)
		}
		equalSeries(t, "healthrouter_alert before the window", seriesOf(metrics(t, ts), "healthrouter_alert"), []string{
			`healthrouter_alert{check="connectivity",host="",level="region",region="eu-west",severity="critical"} 0.75`,
		})

		// A window on the whole region: no host, no check.
		until := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
		resp, data := ts.do(t, "POST", "/v1/maintenance",
			[]byte(`{"region":"eu-west","until":"`+until+`","reason":"core switch replacement"}`), withToken(adminToken))
		if resp.StatusCode != 201 {
			t.Fatalf("POST /v1/maintenance: %d %s", resp.StatusCode, data)
		}

		m := metrics(t, ts)
		tests := []struct {
			metric string
			want   []string
		}{
			{"healthrouter_alert", nil},
			// The window covers the hosts' checks as well: maintenance is
			// their reason, ahead of the region alert's.
			{"healthrouter_alert_suppressed", []string{
				`healthrouter_alert_suppressed{check="connectivity",host="",level="region",reason="maintenance",region="eu-west"} 1`,
				`healthrouter_alert_suppressed{check="connectivity",host="` + web1 + `",level="host",reason="maintenance",region="eu-west"} 1`,
				`healthrouter_alert_suppressed{check="connectivity",host="` + web2 + `",level="host",reason="maintenance",region="eu-west"} 1`,
				`healthrouter_alert_suppressed{check="connectivity",host="` + web3 + `",level="host",reason="maintenance",region="eu-west"} 1`,
			}},
		}
		for _, tt := range tests {
			equalSeries(t, tt.metric, seriesOf(m, tt.metric), tt.want)
		}
	})
}
