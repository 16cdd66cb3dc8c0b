// Command headline prints the README's headline table: every scenario of
// testdata/scenarios replayed (as `healthrouter replay --scenario` does),
// with the pages direct check-to-pager routing would send beside the pages
// healthrouter sends. With -w it rewrites the table in the README between
// the <!-- headline:start --> and <!-- headline:end --> markers.
//
//	go run ./pkg/scenario/headline            # print the table
//	go run ./pkg/scenario/headline -w         # update README.md
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/replay"
	"github.com/healthrouter/healthrouter/pkg/report"
	"github.com/healthrouter/healthrouter/pkg/scenario"
)

// The README markers around the generated table.
const (
	startMarker = "<!-- headline:start -->"
	endMarker   = "<!-- headline:end -->"
)

func main() {
	dir := flag.String("dir", "testdata/scenarios", "scenario `directory`")
	readme := flag.String("readme", "README.md", "README `file` to update with -w")
	write := flag.Bool("w", false, "write the table into the README instead of printing it")
	flag.Parse()
	tbl, err := table(*dir)
	if err == nil && *write {
		err = updateREADME(*readme, tbl)
	} else if err == nil {
		fmt.Print(tbl)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "headline:", err)
		os.Exit(1)
	}
}

// table replays every scenario in dir and renders the markdown table.
func table(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.expected.json"))
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", fmt.Errorf("no scenarios in %s", dir)
	}
	slices.Sort(files)
	var b strings.Builder
	b.WriteString("| # | Incident | Events | Direct-routing pages | healthrouter pages | What healthrouter pages |\n")
	b.WriteString("|--:|:--|--:|--:|--:|:--|\n")
	var direct, pages, brief int
	var pending report.Pending
	for _, f := range files {
		s, err := scenario.Load(f)
		if err != nil {
			return "", err
		}
		sum, err := replayFile(s, strings.TrimSuffix(f, ".expected.json")+".ndjson.gz")
		if err != nil {
			return "", err
		}
		direct += sum.DirectPages
		pages += sum.Pages
		brief += sum.Brief
		pending = sum.Pending
		fmt.Fprintf(&b, "| %d | %s | %s | %d | %d | %s |\n", s.Number, incident(s), thousands(sum.Events),
			sum.DirectPages, sum.Pages, describe(sum))
	}
	fmt.Fprintf(&b, "| | **All %d incidents** | | **%d** | **%d** | |\n", len(files), direct, pages)
	fmt.Fprintf(&b, "\nhealthrouter pages are alerts at a paging severity that stay firing for their rule's pending "+
		"period (host %s, region %s: the defaults), as Grafana pages them. Each host reports at its own point of "+
		"the 30 s interval, so %d alerts across the incidents lived for less than that, while a region's hosts "+
		"were still arriving or recovering: `healthrouter replay` shows them on its timeline, never notified.\n",
		report.ShortDuration(pending.Host), report.ShortDuration(pending.Region), brief)
	return b.String(), nil
}

func replayFile(s *scenario.Scenario, events string) (*replay.Summary, error) {
	r, err := replay.New(replay.Options{Windows: s.Windows, Restarts: s.Restarts})
	if err != nil {
		return nil, err
	}
	f, err := os.Open(events)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sum, err := r.Run(context.Background(), f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", events, err)
	}
	return sum, nil
}

// incident is the DESIGN §9 line without its bracketed expectation.
func incident(s *scenario.Scenario) string {
	text, _, _ := strings.Cut(s.Incident, " [")
	return strings.ReplaceAll(text, "|", `\|`)
}

// describe says in a few words what paged, or why nothing did.
func describe(sum *replay.Summary) string {
	type group struct {
		level   health.Level
		check   string
		n       int
		regions []string
	}
	var paging, quiet []*group
	find := func(gs []*group, a *replay.Alert) ([]*group, *group) {
		for _, g := range gs {
			if g.level == a.Level && g.check == a.Check {
				return gs, g
			}
		}
		g := &group{level: a.Level, check: a.Check}
		return append(gs, g), g
	}
	for i := range sum.Alerts {
		a := &sum.Alerts[i]
		var g *group
		if a.Pages() {
			paging, g = find(paging, a)
		} else {
			quiet, g = find(quiet, a)
		}
		g.n++
		if !slices.Contains(g.regions, a.Region) {
			g.regions = append(g.regions, a.Region)
		}
	}
	render := func(gs []*group) string {
		parts := make([]string, len(gs))
		for i, g := range gs {
			noun := g.level.String() + " alert"
			if g.n > 1 {
				noun += "s"
			}
			slices.Sort(g.regions)
			parts[i] = fmt.Sprintf("%d %s (%s, %s)", g.n, noun, g.check, strings.Join(g.regions, ", "))
		}
		return strings.Join(parts, ", ")
	}
	var out []string
	if len(paging) > 0 {
		out = append(out, render(paging))
	} else {
		out = append(out, "none")
	}
	if len(quiet) > 0 {
		out = append(out, "warning only: "+render(quiet))
	}
	if len(paging) == 0 {
		for _, reason := range []string{health.SuppressedByFlapping, health.SuppressedByMaintenance} {
			if n := sum.Suppressed[reason]; n > 0 {
				out = append(out, fmt.Sprintf("%d suppressed (%s)", n, reason))
			}
		}
	}
	if sum.Restarts > 0 {
		out = append(out, fmt.Sprintf("replayed with %d restart of healthrouter", sum.Restarts))
	}
	return strings.Join(out, "; ")
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// errNoMarkers: the README has no place for the table yet.
var errNoMarkers = errors.New("README has no " + startMarker + " ... " + endMarker + " markers")

// splice returns readme with the text between the markers replaced.
func splice(readme []byte, tbl string) ([]byte, error) {
	i := bytes.Index(readme, []byte(startMarker))
	j := bytes.Index(readme, []byte(endMarker))
	if i < 0 || j < 0 {
		return nil, errNoMarkers
	}
	if j < i {
		return nil, errors.New("README: " + endMarker + " comes before " + startMarker)
	}
	var out bytes.Buffer
	out.Write(readme[:i+len(startMarker)])
	out.WriteString("\n" + tbl)
	out.Write(readme[j:])
	return out.Bytes(), nil
}

func updateREADME(file, tbl string) error {
	readme, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	out, err := splice(readme, tbl)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return os.WriteFile(file, out, 0o644)
}
