package main

import (
	"errors"
	"os"
	"strings"
	"testing"
)

const scenarioDir = "../../../testdata/scenarios"

// TestREADMETable fails when the README's headline table is not what the
// scenarios give: run `make headline`. A README without the table's markers
// fails too: the headline would silently go stale.
func TestREADMETable(t *testing.T) {
	tbl, err := table(scenarioDir)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := splice(readme, tbl)
	if err != nil {
		t.Fatalf("%v: put them around the headline table and run make headline", err)
	}
	if string(want) != string(readme) {
		t.Errorf("README.md's headline table is out of date: run go run ./pkg/scenario/headline -w\nwant:\n%s", tbl)
	}
}

func TestTable(t *testing.T) {
	tbl, err := table(scenarioDir)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(tbl, "\n"), "\n") {
		if strings.HasPrefix(l, "|") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2+11+1 {
		t.Fatalf("%d lines, want a header, 11 scenarios and a total:\n%s", len(lines), tbl)
	}
	for _, want := range []string{
		"| 3 | Upstream routing loop between two regions: connectivity checks fail on every host of one region | 32,160 | 24 | 1 | 1 region alert (connectivity, eu-central) |",
		"| 7 | A check flapping every other result | 32,160 | 8 | 0 | none; 1 suppressed (flapping) |",
		"| 9 | One host stops reporting | 31,940 | 0 | 1 | 1 host alert (not_reporting, ap-south) |",
		"| | **All 11 incidents** | | **89** | **13** | |",
	} {
		if !strings.Contains(tbl, want+"\n") {
			t.Errorf("table lacks %q:\n%s", want, tbl)
		}
	}
}

func TestSplice(t *testing.T) {
	readme := []byte("# healthrouter\n\n" + startMarker + "\nold table\n" + endMarker + "\n\nmore\n")
	got, err := splice(readme, "| new |\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# healthrouter\n\n" + startMarker + "\n| new |\n" + endMarker + "\n\nmore\n"
	if string(got) != want {
		t.Errorf("splice:\n%s\nwant:\n%s", got, want)
	}
	if again, _ := splice(got, "| new |\n"); string(again) != want {
		t.Error("splicing the same table again changes the README")
	}
	if _, err := splice([]byte("no markers"), "x"); !errors.Is(err, errNoMarkers) {
		t.Errorf("no markers: %v", err)
	}
	if _, err := splice([]byte(endMarker+startMarker), "x"); err == nil {
		t.Error("markers in the wrong order accepted")
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 32160: "32,160", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
