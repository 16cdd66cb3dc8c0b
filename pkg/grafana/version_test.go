package grafana

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// A Grafana too old to create rules by uid fails the reconcile on the
// first new region: the plan says why, not only that a write failed.
func TestGrafanaTooOldToCreateRulesIsNamed(t *testing.T) {
	const note = "Grafana 11.4.0 is older than 11.5.2, which healthrouter needs"
	f := newFixture(t, fixtureOpts{})
	rs := regions("eu-west-1")
	if _, text := planText(t, f, rs); strings.Contains(text, "older than 11.5.2") {
		t.Errorf("a current Grafana is called old:\n%s", text)
	}
	f.srv.SetVersion("11.4.0")
	f.r = f.newReconciler(t, fixtureOpts{}) // a process started against it: the version is read once
	_, text := planText(t, f, rs)
	assertContains(t, text, note, "grafana/grafana#98283")
	if _, err := f.r.Apply(context.Background(), rs); err == nil {
		t.Error("apply against a Grafana that refuses the rules succeeded")
	}
	// Its 500 is a refusal, not an outage: direct paging keys off
	// UnreachableSince and must not start (or never stop) over it.
	if st := f.r.Status(); !st.UnreachableSince.IsZero() || st.ReachableSince.IsZero() {
		t.Errorf("a refused write reads as Grafana unreachable: %+v", st)
	}
	logged := false
	for _, e := range f.logs.FilterMessage("grafana reconcile note").All() {
		logged = logged || (e.Level == zap.WarnLevel && strings.Contains(e.ContextMap()["note"].(string), note))
	}
	if !logged {
		t.Error("the failed reconcile does not warn of the note")
	}
}

func TestCreatesRulesByUID(t *testing.T) {
	for v, want := range map[string]bool{
		"11.5.2": true, "11.6.0": true, "12.0.0-12345pre": true, "13.1.0": true, "unknown": true,
		"11.5.1": false, "11.5.1+security-01": false, "11.4.3": false, "10.4.19": false, "9.5.0": false,
	} {
		if got := createsRulesByUID(v); got != want {
			t.Errorf("createsRulesByUID(%q) = %v, want %v", v, got, want)
		}
	}
}

// After Grafana is upgraded past 11.5.2, the next plan asks again and the
// too-old note goes.
func TestUpgradeClearsVersionNote(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	rs := regions("eu-west-1")
	f.srv.SetVersion("11.4.0")
	f.r = f.newReconciler(t, fixtureOpts{})
	if _, text := planText(t, f, rs); !strings.Contains(text, "older than 11.5.2") {
		t.Fatalf("no note:\n%s", text)
	}
	f.srv.SetVersion("11.5.2")
	if _, text := planText(t, f, rs); strings.Contains(text, "older than 11.5.2") {
		t.Errorf("note survives the upgrade:\n%s", text)
	}
}
