package health

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseStatus(t *testing.T) {
	cases := map[string]Status{
		"passing": Passing, "ok": Passing, "OK": Passing, "pass": Passing, "up": Passing, "0": Passing,
		"warning": Warning, "warn": Warning, "WARN": Warning, "1": Warning,
		"critical": Critical, "crit": Critical, "fail": Critical, "failing": Critical, "down": Critical,
		"error": Critical, "Error": Critical, "2": Critical,
		"unknown": Unknown, "3": Unknown, "UNKNOWN": Unknown,
	}
	for in, want := range cases {
		got, ok := ParseStatus([]byte(in))
		if !ok || got != want {
			t.Errorf("ParseStatus(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "4", "-1", "passingg", "critical!", "okay", " ok", "unknownnn"} {
		if _, ok := ParseStatus([]byte(bad)); ok {
			t.Errorf("ParseStatus(%q) accepted", bad)
		}
	}
	if n := testing.AllocsPerRun(100, func() { ParseStatus([]byte("Critical")) }); n != 0 {
		t.Errorf("ParseStatus allocates %v times", n)
	}
}

func TestStatusFromValue(t *testing.T) {
	for v, want := range map[float64]Status{0: Passing, 1: Warning, 2: Critical, 3: Unknown} {
		if got, ok := StatusFromValue(v); !ok || got != want {
			t.Errorf("StatusFromValue(%v) = %v, %v", v, got, ok)
		}
	}
	for _, bad := range []float64{-1, 0.5, 4} {
		if _, ok := StatusFromValue(bad); ok {
			t.Errorf("StatusFromValue(%v) accepted", bad)
		}
	}
}

func TestParseSeverity(t *testing.T) {
	cases := map[string]Severity{
		"critical": SeverityCritical, "CRIT": SeverityCritical, "error": SeverityError, "err": SeverityError,
		"warning": SeverityWarning, "Warn": SeverityWarning, "info": SeverityInfo,
	}
	for in, want := range cases {
		if got, ok := ParseSeverity([]byte(in)); !ok || got != want {
			t.Errorf("ParseSeverity(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "page", "high", "critical2"} {
		if _, ok := ParseSeverity([]byte(bad)); ok {
			t.Errorf("ParseSeverity(%q) accepted", bad)
		}
	}
	for st, want := range map[Status]Severity{Passing: SeverityNone, Warning: SeverityWarning, Critical: SeverityCritical, Unknown: SeverityCritical} {
		if got := SeverityFor(st); got != want {
			t.Errorf("SeverityFor(%v) = %v, want %v", st, got, want)
		}
	}
}

func TestTextRoundTrips(t *testing.T) {
	tr := Transition{Seq: 7, Time: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), Kind: AlertChanged, Level: LevelRegion,
		Key: Key{Region: "eu", Check: "dns"}, From: AlertInactive, To: AlertFiring, Status: Warning, Severity: SeverityWarning}
	b, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	var back Transition
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if back != tr {
		t.Fatalf("round trip %+v != %+v (%s)", back, tr, b)
	}
	for _, bad := range []string{`{"kind":"nope"}`, `{"level":"galaxy"}`, `{"status":"sideways"}`, `{"severity":"loud"}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestAlertID(t *testing.T) {
	cases := []struct {
		a    Alert
		want string
	}{
		{Alert{Level: LevelHost, Region: "eu", Host: "web-1", Checks: []string{"disk", "lvm"}}, "host/eu/web-1"},
		{Alert{Level: LevelHost, Region: "eu", Host: "web-1", Check: NotReporting}, "host/eu/web-1/not_reporting"},
		{Alert{Level: LevelHost, Region: "eu", Host: "web-1", Check: "raid", Suppressed: SuppressedByRegion}, "host/eu/web-1/raid"},
		{Alert{Level: LevelRegion, Region: "eu", Check: "connectivity"}, "region/eu/connectivity"},
	}
	for _, c := range cases {
		if got := c.a.ID(); got != c.want {
			t.Errorf("ID() = %q, want %q", got, c.want)
		}
	}
}

func TestWindowActive(t *testing.T) {
	until := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	w := Window{Until: until}
	if !w.Active(until.Add(-time.Nanosecond)) || w.Active(until) || w.Active(until.Add(time.Second)) {
		t.Fatal("a window is active strictly before its end")
	}
}
