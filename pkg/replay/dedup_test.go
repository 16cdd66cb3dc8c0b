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
