package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/replay"
	"github.com/healthrouter/healthrouter/pkg/report"
	"github.com/healthrouter/healthrouter/pkg/scenario"
)

func init() {
	register("replay", "run recorded events through the engine: its pages beside direct routing's", replayCmd)
}

func replayCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay", stderr)
	var cf configFlags
	cf.register(fs, false)
	format := fs.String("format", "text", "output `format`: text (timeline, then summary) or json (the summary object)")
	progress := fs.Bool("progress", false, "show progress on stderr even when it is not a terminal")
	progressEvery := fs.Duration("progress-every", time.Second, "how often to show progress, `duration`")
	windowsFile := fs.String("windows", "", "JSON `file` of maintenance windows to apply, each at its created time: "+
		`[{"region","host","check","created","until","reason"}], or {"windows":[...]} as GET /v1/maintenance answers`)
	scenarioFile := fs.String("scenario", "", "apply the maintenance windows and restarts of a scenario `file` "+
		"(testdata/scenarios/NN-name.expected.json)")
	var restarts timesFlag
	fs.Var(&restarts, "restart-at", "restart healthrouter at this event `time` (RFC3339, repeatable)")
	noise := fs.Bool("report", false, "print the noise report of the replayed journal after the summary (text only)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: healthrouter replay FILE [flags]\n\n"+
			"FILE holds NDJSON events in time order, optionally gzip or zstd compressed; - reads stdin.\n"+
			"Pages are alerts that stay firing for the config's grafana.pending (default host 2m, region 1m).\n\n"+
			"Exit status: 0 replayed; 1 failed, no events, every event rejected, or input truncated (the\n"+
			"summary covers the events before the cut); 2 usage; 3 replayed, but events came out of time\n"+
			"order (the outcome is not what healthrouter would have done: sort them by their own timestamps).")
		fs.PrintDefaults()
	}
	files, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		fs.Usage()
	}
	file, err := oneArg(fs, files, "want exactly one FILE")
	if err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return &exitError{code: 2, msg: fmt.Sprintf("--format %q: want text or json", *format)}
	}
	if *noise && *format != "text" {
		return &exitError{code: 2, msg: "--report prints text; the json summary is a fixed contract"}
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}

	opts := replay.Options{Config: cfg, Restarts: restarts}
	if *windowsFile != "" {
		ws, err := readWindows(*windowsFile)
		if err != nil {
			return err
		}
		opts.Windows = append(opts.Windows, ws...)
	}
	if *scenarioFile != "" {
		s, err := scenario.Load(*scenarioFile)
		if err != nil {
			return err
		}
		opts.Windows = append(opts.Windows, s.Windows...)
		opts.Restarts = append(opts.Restarts, s.Restarts...)
	}

	in, size, closeIn, err := openInput(file)
	if err != nil {
		return err
	}
	defer closeIn()

	opts.Now = time.Now
	opts.ProgressEvery = *progressEvery
	show := newProgressLine(stderr, size, *progress, opts.Now)
	if show != nil {
		opts.Progress = show.update
	}
	timeline := false
	if *format == "text" {
		opts.OnChange = func(c replay.Change) {
			show.clear()
			fmt.Fprintln(stdout, c.String())
			timeline = true
		}
	}
	var noiseReport *report.Builder
	if *noise {
		pending := report.PendingOf(cfg)
		noiseReport = report.NewBuilder(report.Options{Pending: &pending})
		opts.OnTransition = noiseReport.Add
	}

	r, err := replay.New(opts)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	sum, err := r.Run(ctx, in)
	show.clear()
	var truncated *replay.TruncatedError
	if err != nil && !errors.As(err, &truncated) {
		return fmt.Errorf("%s: %w", file, err)
	}
	if sum.Events == 0 && truncated == nil {
		return fmt.Errorf("%s: no events read: the input is empty", file)
	}
	if err := allRejected(sum); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if truncated != nil {
		fmt.Fprintf(stderr, "replay: warning: %s: %v: the summary covers the %s before the cut\n",
			file, truncated, countOf(truncated.Events, "event"))
	}
	warnings(stderr, sum)
	if err := writeReplay(stdout, sum, *format, timeline, noiseReport); err != nil {
		return err
	}
	switch {
	case truncated != nil:
		return &exitError{code: 1} // the warning above says why
	case sum.Late > 0:
		return &exitError{code: exitLate}
	}
	return nil
}

// exitLate is replay's exit status when events came out of time order: the
// summary is printed, but it is not what healthrouter would have done.
const exitLate = 3

// warnings tells on stderr what makes the summary less than the answer:
// input out of time order, maintenance windows that never applied.
func warnings(stderr io.Writer, sum *replay.Summary) {
	if sum.Late > 0 {
		fmt.Fprintf(stderr, "replay: warning: %s (the first is event %d) came after newer ones by more than the batch window, "+
			"up to %s: the input is not in time order and the outcome is wrong; replay does not reorder: "+
			"record or sort the events by their own timestamps upstream\n", countOf(sum.Late, "event"), sum.FirstLate, sum.LateBy)
	}
	if sum.WindowsOutside > 0 {
		span := "no events"
		if !sum.First.IsZero() {
			span = sum.First.UTC().Format(time.RFC3339) + " to " + sum.Last.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(stderr, "replay: warning: maintenance windows not applied: %d cover none of the events' time (%s); "+
			"GET /v1/maintenance lists only the windows current when it is asked\n", sum.WindowsOutside, span)
	}
}

func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// writeReplay prints the summary in format, after the timeline in text,
// with the noise report when asked.
func writeReplay(stdout io.Writer, sum *replay.Summary, format string, timeline bool, noiseReport *report.Builder) error {
	if format == "json" {
		return sum.WriteJSON(stdout)
	}
	if timeline {
		fmt.Fprintln(stdout)
	}
	if err := sum.WriteText(stdout); err != nil {
		return err
	}
	if noiseReport != nil {
		fmt.Fprintln(stdout)
		noiseReport.Advance(sum.Last)
		return noiseReport.Report().WriteText(stdout)
	}
	return nil
}

// allRejected is the error for a replay in which no event counted: its
// "no alert fired" would say nothing of the input, which is most likely in
// the wrong format.
func allRejected(sum *replay.Summary) error {
	if sum.Events == 0 || sum.Rejected < sum.Events {
		return nil
	}
	first := "no reason recorded"
	if len(sum.Errors) > 0 {
		first = sum.Errors[0]
	}
	return fmt.Errorf("every event was rejected (%d of %d); the first: %s", sum.Rejected, sum.Events, first)
}

// openInput opens the recording, "-" for stdin; size is 0 when unknown.
func openInput(name string) (io.Reader, int64, func(), error) {
	if name == "-" {
		return os.Stdin, 0, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, nil, err
	}
	var size int64
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return f, size, func() { _ = f.Close() }, nil
}

func readWindows(file string) ([]health.Window, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--windows: %w", err)
	}
	// A list as written by hand, or GET /v1/maintenance's answer saved as
	// is.
	var ws []health.Window
	if err := json.Unmarshal(data, &ws); err == nil {
		return ws, nil
	}
	var listed struct {
		Windows *[]health.Window `json:"windows"`
	}
	if err := json.Unmarshal(data, &listed); err != nil || listed.Windows == nil {
		if err == nil {
			err = errors.New(`no "windows" key`)
		}
		return nil, fmt.Errorf(`--windows %s: want a JSON array of windows or {"windows":[...]}: %w`, file, err)
	}
	return *listed.Windows, nil
}

// timesFlag collects repeated RFC 3339 times.
type timesFlag []time.Time

func (t *timesFlag) String() string {
	parts := make([]string, len(*t))
	for i, v := range *t {
		parts[i] = v.Format(time.RFC3339)
	}
	return strings.Join(parts, ",")
}

func (t *timesFlag) repeatable() {}

func (t *timesFlag) Set(s string) error {
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("want RFC3339 such as 2026-03-02T08:07:15Z")
	}
	*t = append(*t, v)
	return nil
}

// progressLine shows replay progress on stderr: rewritten in place on a
// terminal, one line per update otherwise.
type progressLine struct {
	w     io.Writer
	tty   bool
	size  int64
	now   func() time.Time
	start time.Time
	shown bool
}

// newProgressLine returns nil when progress is not wanted: stderr is not a
// terminal and --progress was not given.
func newProgressLine(stderr io.Writer, size int64, force bool, now func() time.Time) *progressLine {
	tty := isTerminal(stderr)
	if !tty && !force {
		return nil
	}
	return &progressLine{w: stderr, tty: tty, size: size, now: now, start: now()}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progressLine) update(pr replay.Progress) {
	var b strings.Builder
	fmt.Fprintf(&b, "replay: %d events", pr.Events)
	if p.size > 0 {
		fmt.Fprintf(&b, " (%.0f%% of %d MB)", 100*float64(pr.Bytes)/float64(p.size), p.size/1e6)
	}
	if !pr.EventTime.IsZero() {
		fmt.Fprintf(&b, ", at %s", pr.EventTime.Format(time.RFC3339))
	}
	if s := p.now().Sub(p.start).Seconds(); s > 0 {
		fmt.Fprintf(&b, ", %.0f events/s", float64(pr.Events)/s)
	}
	fmt.Fprintf(&b, ", %d pages (direct routing %d)", pr.Pages, pr.DirectPages)
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K"+b.String())
		p.shown = true
		return
	}
	fmt.Fprintln(p.w, b.String())
}

// clear removes the progress line from a terminal before other output.
func (p *progressLine) clear() {
	if p != nil && p.tty && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}
