package grafana

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// notesLogged counts the reconcile notes logged at level that contain text.
func notesLogged(f *fixture, level zapcore.Level, text string) int {
	n := 0
	for _, e := range f.logs.FilterMessage("grafana reconcile note").All() {
		if e.Level == level && strings.Contains(e.ContextMap()["note"].(string), text) {
			n++
		}
	}
	return n
}

// A note repeated every reconcile (a region kept until prune_after of
// uptime) is a warning once: its words do not change with the clock, and a
// reconcile that cannot read Grafana does not make it new again.
func TestNotesWarnOnce(t *testing.T) {
	const kept = "keeping rule group ap: region ap not seen since healthrouter started"
	f := newFixture(t, fixtureOpts{grafana: "prune: true\nprune_after: 168h"})
	f.apply(t, regions("eu", "ap"))
	only := regions("eu")
	f.clk.Advance(time.Hour)
	first := f.apply(t, only)
	f.clk.Advance(2 * time.Hour)
	second := f.apply(t, only)
	if strings.Join(first.Notes, "\n") != strings.Join(second.Notes, "\n") || !strings.Contains(first.String(), kept) {
		t.Errorf("notes change with the clock:\n%v\n%v", first.Notes, second.Notes)
	}
	f.srv.FailAll(503)
	if _, err := f.r.Apply(context.Background(), only); err == nil {
		t.Fatal("apply through a 503 succeeded")
	}
	f.srv.FailAll(0)
	f.apply(t, only)
	if n := notesLogged(f, zap.WarnLevel, kept); n != 1 {
		t.Errorf("the note was warned of %d times over four reconciles, want once", n)
	}
	if n := notesLogged(f, zap.DebugLevel, kept); n != 2 {
		t.Errorf("the note was repeated at debug %d times, want 2", n)
	}
}
