package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/report"
	"github.com/healthrouter/healthrouter/pkg/store"
)

// TestReportFromStoreCountsAsOfLastWrite: a stopped server's report counts
// an alert still firing at its newest journal entry as a page when the
// server went on running (its store written later) past the pending
// period, as GET /v1/report counted it then.
func TestReportFromStoreCountsAsOfLastWrite(t *testing.T) {
	fired := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	pending := report.Pending{Host: 2 * time.Minute, Region: time.Minute}
	for _, tc := range []struct {
		name      string
		lastWrite time.Time
		pages     int
	}{
		{"written past the pending period", fired.Add(3 * time.Minute), 1},
		{"written within the pending period", fired.Add(time.Minute), 0},
		{"written at the firing itself", fired, 0},
		// A file time older than the journal (copied, clock changed) does
		// not move the report before its newest entry.
		{"file time before the entry", fired.Add(-time.Hour), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			st, err := store.Open(dir, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			key := health.Key{Region: "eu", Host: "db-1", Check: "disk"}
			err = st.Commit(context.Background(), &store.Commit{Transitions: []health.Transition{
				{Seq: 1, Time: fired.Add(-30 * time.Second), Kind: health.CheckChanged, Key: key,
					From: health.PhaseSoft, To: health.PhaseHard, Status: health.Critical},
				{Seq: 2, Time: fired, Kind: health.AlertChanged, Level: health.LevelHost, Key: key,
					From: health.AlertInactive, To: health.AlertFiring, Status: health.Critical,
					Severity: health.SeverityCritical},
			}})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(filepath.Join(dir, store.FileName), tc.lastWrite, tc.lastWrite); err != nil {
				t.Fatal(err)
			}
			rep, err := reportFromStore(dir, pending)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Checks) != 1 || rep.Checks[0].Check != "disk" || rep.Checks[0].Pages != tc.pages {
				t.Errorf("report %+v, want disk with %d pages", rep.Checks, tc.pages)
			}
			// Reading does not change the time the next read goes by.
			fi, err := os.Stat(filepath.Join(dir, store.FileName))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.ModTime().Equal(tc.lastWrite) {
				t.Errorf("reading the store moved its modification time to %s", fi.ModTime())
			}
		})
	}
}
