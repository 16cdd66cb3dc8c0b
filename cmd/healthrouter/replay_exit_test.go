package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// replayLines writes an NDJSON file of disk results, each event given as
// "OFFSET STATUS [HOST]": its time after 08:00, its status, its host (a
// when not given).
func replayLines(t *testing.T, name string, events ...string) string {
	t.Helper()
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	var b strings.Builder
	for _, ev := range events {
		f := append(strings.Fields(ev), "a")
		d, err := time.ParseDuration(f[0])
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, `{"region":"eu","host":%q,"check":"disk","status":%q,"timestamp":%q}`+"\n",
			f[2], f[1], t0.Add(d).Format(time.RFC3339))
	}
	file := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestReplayCommandExitStatus: what replay prints and how it exits when
// the summary is not the whole answer (events late, input cut short) or
// there is no summary to give (no events).
func TestReplayCommandExitStatus(t *testing.T) {
	inOrder := replayLines(t, "in-order.ndjson", "0s critical", "30s critical", "60s ok")
	late := replayLines(t, "late.ndjson", "0s critical", "5m critical", "30s ok b", "6m ok")
	// A retry of the first event after newer ones: discarded, not late.
	retry := replayLines(t, "retry.ndjson", "0s critical", "5m critical", "0s critical", "6m ok")
	empty := replayLines(t, "empty.ndjson")
	blank := filepath.Join(t.TempDir(), "blank.ndjson")
	if err := os.WriteFile(blank, []byte("\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A gzip file cut after its first line, as a copy interrupted or a
	// file still being written leaves it.
	plain, err := os.ReadFile(inOrder)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	first := bytes.IndexByte(plain, '\n') + 1
	for _, part := range [][]byte{plain[:first], plain[first:]} {
		if _, err := zw.Write(part); err != nil {
			t.Fatal(err)
		}
		if err := zw.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.ndjson.gz")
	if err := os.WriteFile(cut, gz.Bytes()[:gz.Len()-30], 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		file   string
		code   int
		events int    // in the JSON summary; -1: none printed
		stderr string // "": nothing on stderr
	}{
		{"in order", inOrder, 0, 3, ""},
		{"late events", late, exitLate, 4, "replay: warning: 1 event (the first is event 3) came after newer ones"},
		{"late retry", retry, 0, 4, ""},
		{"truncated gzip", cut, 1, 1, "replay: warning: " + cut + ": input truncated after event 1: read: unexpected EOF: " +
			"the summary covers the 1 event before the cut"},
		{"empty file", empty, 1, -1, "no events read: the input is empty"},
		{"blank lines only", blank, 1, -1, "no events read: the input is empty"},
	} {
		for _, format := range []string{"json", "text"} {
			t.Run(tc.name+" "+format, func(t *testing.T) {
				code, stdout, stderr := runCLI("replay", tc.file, "--format", format)
				if code != tc.code {
					t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr)
				}
				if tc.stderr == "" && stderr != "" || !strings.Contains(stderr, tc.stderr) {
					t.Errorf("stderr %q, want %q", stderr, tc.stderr)
				}
				if strings.Contains(stderr, "jq") {
					t.Errorf("stderr suggests jq, which cannot sort mixed timestamps: %q", stderr)
				}
				switch {
				case tc.events < 0 && stdout != "":
					t.Errorf("stdout %q, want nothing", stdout)
				case tc.events < 0:
				case format == "json":
					var sum replaySummary
					if err := json.Unmarshal([]byte(stdout), &sum); err != nil || sum.Events != tc.events {
						t.Errorf("JSON summary %+v (%v), want %d events: %s", sum, err, tc.events, stdout)
					}
				case !strings.Contains(stdout, fmt.Sprintf("replayed %d events", tc.events)):
					t.Errorf("text summary lacks %d events:\n%s", tc.events, stdout)
				}
			})
		}
	}
}

// TestReplayCommandWarnsOfUnusedWindows: windows outside the events' time
// (a GET /v1/maintenance saved after the incident lists only current ones)
// are counted on stderr; the ones that applied are not.
func TestReplayCommandWarnsOfUnusedWindows(t *testing.T) {
	events := replayLines(t, "events.ndjson", "0s critical", "30s critical", "10m ok")
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		windows string
		want    string
	}{
		{"all current", `{"windows":[{"id":"w1","region":"eu","host":"a","created":"2026-03-02T07:00:00Z","until":"2026-03-02T09:00:00Z","reason":"drain"}]}`, ""},
		{"saved later", `{"windows":[{"id":"w1","region":"eu","host":"a","created":"2026-11-26T06:48:58Z","until":"2026-11-26T09:00:00Z","reason":"drain"}]}`,
			"maintenance windows not applied: 1 cover none of the events' time (2026-03-02T08:00:00Z to 2026-03-02T08:10:00Z)"},
		{"one before, one after, one during", `[
			{"region":"eu","created":"2026-03-02T06:00:00Z","until":"2026-03-02T07:00:00Z","reason":"before"},
			{"region":"eu","created":"2026-03-02T08:10:01Z","until":"2026-03-02T09:00:00Z","reason":"after"},
			{"region":"eu","created":"2026-03-02T08:05:00Z","until":"2026-03-02T09:00:00Z","reason":"during"}]`,
			"maintenance windows not applied: 2 cover none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if err := os.WriteFile(file, []byte(tc.windows), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runCLI("replay", events, "--windows", file, "--format", "json")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if tc.want == "" && stderr != "" || !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q, want %q", stderr, tc.want)
			}
		})
	}
}
