package replay_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/healthrouter/healthrouter/pkg/replay"
)

// TestDuplicatesNotCounted: raw failing results and direct pages count
// only the results the engine keeps. Vector retrying a request sends its
// events again, and a retry that arrives after newer results is older
// than the state: neither is a second observation.
func TestDuplicatesNotCounted(t *testing.T) {
	direct := readFile(t, "testdata/direct.ndjson")
	once := run(t, replay.Options{}, bytes.NewReader(direct))
	lines := strings.SplitAfter(string(direct), "\n")

	var twice, again strings.Builder
	for _, l := range lines {
		twice.WriteString(l + l)
	}
	again.Write(direct)
	again.Write(direct)
	// The same events with an event_id each, every one sent twice.
	var ids strings.Builder
	for i, l := range lines {
		if l, ok := strings.CutPrefix(l, "{"); ok {
			l = fmt.Sprintf(`{"event_id":"id-%d",%s`, i, l)
			ids.WriteString(l + l)
		}
	}
	for _, tc := range []struct {
		name       string
		in         string
		rawFailing int
		direct     int
		duplicates int
		late       int
	}{
		{"every line twice in a row", twice.String(), once.RawFailing, once.DirectPages, 16, 0},
		// The second copy is late, but every event of it a duplicate.
		{"the whole file twice", again.String(), once.RawFailing, once.DirectPages, 16, 0},
		{"every line twice with event ids", ids.String(), once.RawFailing, once.DirectPages, 16, 0},
		// critical, ok, the first critical again (a late retry), ok: one
		// page, one failing result.
		{"a late retry", string(readFile(t, "testdata/late-retry.ndjson")), 1, 1, 1, 0},
		// The same within one timestamp: the retry is not older than the
		// state, and only its event_id, the one before the state's, tells
		// it for a retry.
		{"a retry at the same time", string(readFile(t, "testdata/same-time-retry.ndjson")), 1, 1, 1, 0},
		// The same with the late event a result of another host: kept,
		// and late.
		{"a late result", string(readFile(t, "testdata/late-result.ndjson")), 2, 2, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum := run(t, replay.Options{}, strings.NewReader(tc.in))
			if sum.RawFailing != tc.rawFailing || sum.DirectPages != tc.direct {
				t.Errorf("raw failing %d, direct pages %d; want %d and %d", sum.RawFailing, sum.DirectPages,
					tc.rawFailing, tc.direct)
			}
			// The engine discarded the same results.
			if sum.Duplicates != tc.duplicates {
				t.Errorf("engine duplicates %d, want %d", sum.Duplicates, tc.duplicates)
			}
			if sum.Late != tc.late {
				t.Errorf("%d late events, want %d", sum.Late, tc.late)
			}
		})
	}
}

// TestSameTimeWithoutEventID: without an event_id, a result repeating a
// check's timestamp is a duplicate only when it repeats its status too. A
// check that reports passing and then critical within one second of
// timestamp resolution changed, and pages.
func TestSameTimeWithoutEventID(t *testing.T) {
	line := func(status, id string) string {
		l := `{"region":"r1","host":"a","check":"disk","status":"` + status + `","timestamp":"2026-03-02T08:00:00Z"`
		if id != "" {
			l += `,"event_id":"` + id + `"`
		}
		return l + "}\n"
	}
	for _, tc := range []struct {
		name       string
		in         []string
		rawFailing int
		direct     int
		duplicates int
	}{
		{"passing then critical", []string{line("ok", ""), line("critical", "")}, 1, 1, 0},
		{"critical twice", []string{line("critical", ""), line("critical", "")}, 1, 1, 1},
		{"critical, passing, critical", []string{line("critical", ""), line("ok", ""), line("critical", "")}, 2, 2, 0},
		{"passing then critical with event ids", []string{line("ok", "e1"), line("critical", "e2")}, 1, 1, 0},
	} {
		// In one batch, and in a batch each: the rule is per result.
		for _, maxBatch := range []int{0, 1} {
			t.Run(fmt.Sprintf("%s/max batch %d", tc.name, maxBatch), func(t *testing.T) {
				sum := run(t, replay.Options{MaxBatch: maxBatch}, strings.NewReader(strings.Join(tc.in, "")))
				if sum.RawFailing != tc.rawFailing || sum.DirectPages != tc.direct {
					t.Errorf("raw failing %d, direct pages %d; want %d and %d", sum.RawFailing, sum.DirectPages,
						tc.rawFailing, tc.direct)
				}
				// Direct routing keeps exactly the results the engine keeps.
				if sum.Duplicates != tc.duplicates {
					t.Errorf("engine duplicates %d, want %d", sum.Duplicates, tc.duplicates)
				}
				if sum.Events != len(tc.in) || sum.Rejected != 0 {
					t.Errorf("events %d, rejected %d; want %d and 0", sum.Events, sum.Rejected, len(tc.in))
				}
			})
		}
	}
}
