package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// noiseRow is one row of the report's JSON.
type noiseRow struct {
	Check        string `json:"check"`
	HardFailures int    `json:"hard_failures"`
	Pages        int    `json:"pages"`
	Flaps        int    `json:"flaps"`
	Resolved     int    `json:"resolved"`
	FailingNow   int    `json:"failing_now"`
}

// TestReportCommand asks a running server for its noise report, then reads
// the same journal from its data directory once it is stopped.
func TestReportCommand(t *testing.T) {
	skipShort(t)
	// The client reads with an ingest token, as the server accepts.
	t.Setenv(config.EnvIngestTokens, testToken)
	dir := t.TempDir()
	p := start(t, dir)
	// disk fails on two hosts (two results each: confirm_after 2), then
	// recovers on one; ntp passes.
	now := time.Now().UTC()
	var events []string
	for _, r := range []struct {
		ago               time.Duration
		host, chk, status string
	}{
		{90 * time.Second, "db-1", "disk", "critical"},
		{90 * time.Second, "db-2", "disk", "critical"},
		{90 * time.Second, "db-1", "ntp", "ok"},
		{60 * time.Second, "db-1", "disk", "critical"},
		{60 * time.Second, "db-2", "disk", "critical"},
		{30 * time.Second, "db-2", "disk", "ok"},
	} {
		events = append(events, fmt.Sprintf(`{"check":%q,"host":%q,"region":"eu","status":%q,"timestamp":%q}`,
			r.chk, r.host, r.status, now.Add(-r.ago).Format(time.RFC3339)))
	}
	for _, ev := range events {
		if code := p.post([]byte(ev)); code != 200 {
			t.Fatalf("post %s: %d", ev, code)
		}
	}
	// The host alerts fired seconds ago: inside Grafana's pending period,
	// so not pages (yet).
	want := []noiseRow{{Check: "disk", HardFailures: 2, Resolved: 1, FailingNow: 1}}

	code, out, errs := runBinary(t, nil, "report", "--server", p.url, "--format", "json")
	if code != 0 {
		t.Fatalf("report --server: exit %d: %s", code, errs)
	}
	if got := noiseRows(t, out); !reflect.DeepEqual(got, want) {
		t.Errorf("report --server: %+v, want %+v", got, want)
	}
	code, out, errs = runBinary(t, nil, "report", "--server", p.url)
	if code != 0 || !strings.Contains(out, "CHECK") || !strings.Contains(out, "disk") {
		t.Errorf("report --server (text): exit %d:\n%s%s", code, out, errs)
	}

	// A running server holds the store.
	code, _, errs = runBinary(t, nil, "report", "--data-dir", dir)
	if code == 0 || !strings.Contains(errs, "ask it with --server") {
		t.Errorf("report --data-dir of a running server: exit %d, %q", code, errs)
	}
	p.stop(t)
	code, out, errs = runBinary(t, nil, "report", "--data-dir", dir, "--format", "json")
	if code != 0 {
		t.Fatalf("report --data-dir: exit %d: %s", code, errs)
	}
	if got := noiseRows(t, out); !reflect.DeepEqual(got, want) {
		t.Errorf("report --data-dir: %+v, want %+v", got, want)
	}
	// Rules without a pending period page every alert that fired: both
	// hosts' disk alerts.
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, []byte("grafana:\n  pending: {host: 0s, region: 0s}\npagerduty:\n  routing_keys: {default: HEALTHROUTER_PD_DEFAULT}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runBinary(t, nil, "report", "--data-dir", dir, "--config", cfgFile, "--format", "json")
	want[0].Pages = 2
	if got := noiseRows(t, code0(t, code, errs, out)); !reflect.DeepEqual(got, want) {
		t.Errorf("report --data-dir --config (no pending period): %+v, want %+v", got, want)
	}
}

// code0 fails the test unless a command exited 0, and returns its output.
func code0(t *testing.T, code int, stderr, stdout string) string {
	t.Helper()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	return stdout
}

func TestReportCommandErrors(t *testing.T) {
	skipShort(t)
	empty := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"report", "--server", "http://127.0.0.1:9", "--data-dir", empty}, 2, "not both"},
		{[]string{"report", "--format", "yaml", "--data-dir", empty}, 2, `--format "yaml"`},
		{[]string{"report", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"report", "--config", "x.yaml"}, 2, "--config goes with --data-dir"},
		{[]string{"report", "--data-dir", empty}, 1, "no healthrouter store in " + empty},
		{[]string{"report", "--data-dir", filepath.Join(empty, "missing")}, 1, "no healthrouter store"},
	} {
		code, _, errs := runBinary(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(empty, "missing")); !os.IsNotExist(err) {
		t.Errorf("report --data-dir created %s", filepath.Join(empty, "missing"))
	}
}

// noiseRows decodes the report's JSON rows, refusing unknown top-level keys.
func noiseRows(t *testing.T, out string) []noiseRow {
	t.Helper()
	var rep struct {
		From               time.Time `json:"from"`
		To                 time.Time `json:"to"`
		Transitions        int       `json:"transitions"`
		QuickWithinSeconds float64   `json:"quick_within_seconds"`
		Checks             []struct {
			noiseRow
			MedianFailingSeconds float64 `json:"median_failing_seconds"`
			ResolvedQuickly      int     `json:"resolved_quickly"`
			QuickShare           float64 `json:"quick_share"`
			Noise                int     `json:"noise"`
		} `json:"checks"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("report JSON: %v in %s", err, out)
	}
	if rep.Transitions == 0 || rep.QuickWithinSeconds != 300 {
		t.Errorf("report: %d transitions, quick within %gs; want some and 300s", rep.Transitions, rep.QuickWithinSeconds)
	}
	rows := make([]noiseRow, len(rep.Checks))
	for i, c := range rep.Checks {
		rows[i] = c.noiseRow
	}
	return rows
}
