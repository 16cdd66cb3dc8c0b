// Package replay runs recorded health-check events through the ingest
// decoder and the engine on the events' own clock, and says what
// healthrouter would have paged beside what check-to-pager routing would
// have: how a team tries new thresholds on last month's data before
// deploying them.
//
// # Input
//
// NDJSON, one event per line as Vector's http sink sends them, optionally
// gzip or zstd compressed (recognised by their magic bytes). The stream is
// decoded a chunk of lines at a time, so memory stays bounded whatever the
// file's size: it grows with the fleet (the engine's state), not with the
// events. Every event needs its timestamp: it is the clock. A JSON array is
// refused with a hint to convert it.
//
// # Clock and batching
//
// The engine sees what the server would have: results arrive in batches as
// Vector sends them (a batch closes one second of event time after its
// first result, or at 10,000 results), each batch received at its newest
// event time. The engine ticks every engine.tick_every (5 s) of event time,
// on multiples of it as the server's ticker does; a gap in the events
// longer than a day is crossed with a single tick. Maintenance windows are
// added when the clock reaches their Created time. A restart point crashes
// the engine and starts a new one from what the server would have on disk:
// every state the engine handed over for persistence (Outcome.Changed), the
// last-seen checkpoints taken every engine.checkpoint, and the windows.
//
// # What is counted
//
// Raw failing results and direct pages count the results the engine keeps:
// a retry (a repeated event_id, or without one the same status at the same
// timestamp) or a result older than its check's newest is the same
// observation again, which neither healthrouter nor a pager would act on.
// Direct pages: a check-to-pager integration pages once per (region, host,
// check) transition into critical, in arrival order, with no confirmation,
// no grouping and no suppression; warning and unknown do not page.
// healthrouter pages: alert series at critical or error severity
// (PagerDuty high urgency) that Grafana fires, those that stay firing
// unsuppressed for their rule's pending period (grafana.pending of the
// configuration, 2m for hosts and 1m for regions when it has none; see
// report.Pager, which the noise report shares). A firing alert whose
// severity changes is a new series of healthrouter_alert, with a pending
// period of its own. The timeline shows every change, with the series that
// ended within their pending period marked, and a "notified" entry when a
// series has been firing long enough.
//
// # Order
//
// The input must be in time order, as a recording of what Vector sent is.
// An event more than the batch window older than one read before it is
// applied at the replay's clock, which gives a wrong answer; such events
// are counted and reported (Summary.Late), not reordered. A late retry of
// a result already applied is a duplicate the engine discards: it changes
// nothing and is not counted.
package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/engine"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/ingest"
	"github.com/healthrouter/healthrouter/pkg/report"
)

// Options configure a Replayer. The zero value replays with the embedded
// default configuration.
type Options struct {
	// Config supplies the engine settings, the check rules, the ingest
	// field names and the rules' pending periods (grafana.pending); nil
	// means config.Default(). Its ingest size limits are replaced by the
	// replay's own: a recording is not a request.
	Config *config.Config
	// Windows are maintenance windows to apply, each when the event clock
	// reaches its Created time (or at the first event if it was created
	// before). A window that ended before the first event is skipped;
	// Summary.WindowsOutside counts those that cover none of the events.
	Windows []health.Window
	// Restarts are event times at which healthrouter crashes and restarts
	// from its persisted state.
	Restarts []time.Time

	// OnChange receives the alert timeline as it happens.
	OnChange func(Change)
	// OnTransition receives every journal entry, e.g. for a noise report.
	// The transition is valid only during the call.
	OnTransition func(*health.Transition)
	// Progress is called between chunks: every ProgressEvery of Now's
	// clock, or every progressEvents events when Now is nil.
	Progress      func(Progress)
	ProgressEvery time.Duration
	Now           func() time.Time

	// BatchWindow and MaxBatch shape the batches (Vector's batch timeout
	// and size); ChunkBytes the decoding chunks. Zero means 1 s, 10,000
	// and 1 MiB.
	BatchWindow time.Duration
	MaxBatch    int
	ChunkBytes  int
}

// Progress is a snapshot for a progress display.
type Progress struct {
	Events int
	// Bytes is how much of the input (as stored, compressed or not) has
	// been read.
	Bytes       int64
	EventTime   time.Time
	Pages       int
	DirectPages int
}

const (
	defaultBatchWindow = time.Second
	defaultMaxBatch    = 10000
	defaultChunkBytes  = 1 << 20
	// maxLine bounds one NDJSON line: no health-check event is bigger.
	maxLine = 1 << 20
	// progressEvents paces Progress when there is no clock.
	progressEvents = 1 << 18
	// maxTickGap is the longest stretch of event time ticked tick by tick.
	maxTickGap = 24 * time.Hour
)

// Replayer decides what healthrouter would have done with a recorded event
// stream under a given configuration: the alert timeline, its pages and
// suppressions, and the pages direct check-to-pager routing would have
// sent instead. It is immutable; each Run starts from an empty engine.
type Replayer struct {
	opts      Options
	engineCfg engine.Config
	pending   report.Pending
	decoder   *ingest.Decoder
	windows   []health.Window // sorted by Created
	restarts  []time.Time     // sorted
	tickEvery time.Duration
	ckptEvery time.Duration
}

// New validates the options.
func New(opts Options) (*Replayer, error) {
	cfg := opts.Config
	if cfg == nil {
		cfg = config.Default()
	}
	if opts.BatchWindow <= 0 {
		opts.BatchWindow = defaultBatchWindow
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = defaultMaxBatch
	}
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = defaultChunkBytes
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = time.Second
	}
	r := &Replayer{
		opts:      opts,
		engineCfg: engine.Config{Engine: cfg.Engine, Checks: cfg.Checks},
		pending:   report.PendingOf(cfg),
		tickEvery: cfg.Engine.TickEvery.D(),
		ckptEvery: cfg.Engine.Checkpoint.D(),
	}
	def := config.Default().Engine
	if r.tickEvery <= 0 {
		r.tickEvery = def.TickEvery.D()
	}
	if r.ckptEvery <= 0 {
		r.ckptEvery = def.Checkpoint.D()
	}
	if _, err := engine.New(r.engineCfg); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}

	ic := cfg.Ingest
	limit := opts.ChunkBytes + maxLine
	ic.MaxBodyBytes, ic.MaxDecodedBytes = config.Bytes(limit), config.Bytes(limit)
	ic.MaxEvents = limit
	dec, err := ingest.NewDecoder(ic)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	r.decoder = dec

	for i, w := range opts.Windows {
		if w.Region == "" || w.Created.IsZero() || !w.Until.After(w.Created) {
			return nil, fmt.Errorf("replay: maintenance window %d (%s): want a region and created before until", i, w.ID)
		}
	}
	r.windows = slices.Clone(opts.Windows)
	slices.SortStableFunc(r.windows, func(a, b health.Window) int { return a.Created.Compare(b.Created) })
	r.restarts = slices.Clone(opts.Restarts)
	slices.SortFunc(r.restarts, time.Time.Compare)
	return r, nil
}

// TruncatedError reports input that ends inside a compressed stream, as a
// copy cut short or a file still being written does. Run returns it with
// the summary of the events before the cut.
type TruncatedError struct {
	// Events is the number of events read whole before the cut.
	Events int
	Err    error
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("input truncated after event %d: %v", e.Events, e.Err)
}

func (e *TruncatedError) Unwrap() error { return e.Err }

// Run replays the events in in and returns the summary. It stops early,
// returning ctx's error, when ctx ends. Input cut short (a truncated gzip
// or zstd file) returns the summary of the events before the cut with a
// *TruncatedError; any other failure returns no summary.
func (r *Replayer) Run(ctx context.Context, in io.Reader) (*Summary, error) {
	counted := &countingReader{r: in}
	src, closeSrc, err := decompress(counted)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	defer closeSrc()

	rn := &run{
		Replayer: r,
		sum:      &Summary{Suppressed: map[string]int{}, Alerts: []Alert{}},
		checks:   make(map[string]int),
		batch:    make([]health.Result, 0, 1024),
	}
	rn.book = newAlertBook(rn.sum, r.pending, r.opts.OnChange)
	defer rn.release()
	if len(r.restarts) > 0 {
		rn.persisted = make(map[health.Key]health.CheckState)
	}

	ch := newChunker(src, r.opts.ChunkBytes, maxLine)
	var lastProgress time.Time
	if r.opts.Now != nil {
		lastProgress = r.opts.Now()
	}
	lastEvents := 0
	var truncated error
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		chunk, err := ch.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			truncated = &TruncatedError{Events: rn.sum.Events, Err: err}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("replay: event %d: %w", rn.sum.Events+1, err)
		}
		if err := rn.chunk(chunk, ch); err != nil {
			return nil, err
		}
		if r.opts.Progress != nil {
			due := rn.sum.Events-lastEvents >= progressEvents
			if r.opts.Now != nil {
				now := r.opts.Now()
				if due = now.Sub(lastProgress) >= r.opts.ProgressEvery; due {
					lastProgress = now
				}
			}
			if due {
				lastEvents = rn.sum.Events
				r.opts.Progress(Progress{Events: rn.sum.Events, Bytes: counted.n, EventTime: unixTime(rn.clock),
					Pages: rn.sum.Pages, DirectPages: rn.sum.DirectPages})
			}
		}
	}
	if err := rn.flush(); err != nil {
		return nil, err
	}
	if rn.started {
		rn.book.finish(unixTime(rn.clock))
	}
	rn.sum.WindowsOutside = r.windowsOutside(rn.sum.First, rn.sum.Last)
	return rn.sum, truncated
}

// windowsOutside counts the windows that cover none of first to last: all
// of them when there were no events.
func (r *Replayer) windowsOutside(first, last time.Time) int {
	n := 0
	for _, w := range r.windows {
		if first.IsZero() || !w.Until.After(first) || w.Created.After(last) {
			n++
		}
	}
	return n
}

// run is one replay's state.
type run struct {
	*Replayer
	sum  *Summary
	book *alertBook

	eng     *engine.Engine
	out     engine.Outcome
	started bool
	// clock is the event clock in Unix nanoseconds: the newest batch or
	// timer applied. nextTick and nextCkpt are the next timer times.
	clock, nextTick, nextCkpt int64
	wi, ri                    int // next window and restart to apply

	// What the server would have on disk, kept only when restarting.
	persisted          map[health.Key]health.CheckState
	persistedWindows   []health.Window
	persistedForgotten []health.ForgottenHost

	// The open batch: results since batchStart, the newest at batchEnd.
	// They point into the decoder buffers of the current chunk and of the
	// held ones, earlier chunks released once the batch is applied. A
	// batch is bounded (MaxBatch), and so are the chunks it spans.
	batch                []health.Result
	batchEvents          []int   // each result's event number, for errors
	batchLags            []int64 // how late each result came, 0: in order
	batchStart, batchEnd int64
	held                 []*ingest.Decoded

	// checks indexes, per check, its newest kept result in last, for
	// direct routing; keyBuf builds lookups without allocating.
	checks map[string]int
	last   []lastResult
	keyBuf []byte
}

// lastResult is what the engine's deduplication compares a check's next
// result with, and whether direct routing has it critical.
type lastResult struct {
	time     int64
	eventID  uint64 // 0: none
	prevID   uint64 // the event_id before eventID, 0: none
	status   health.Status
	critical bool
}

// chunk decodes one chunk of lines and feeds its results.
func (rn *run) chunk(chunk []byte, ch *chunker) error {
	base := rn.sum.Events
	rn.sum.Events += ch.lines
	for _, at := range ch.skipped {
		rn.sum.reject("event %d: a line longer than %d bytes", base+at+1, maxLine)
	}
	decoded := ch.lines - len(ch.skipped)
	if decoded == 0 {
		return nil
	}
	if firstByte(chunk) == '[' {
		return fmt.Errorf("replay: event %d: a JSON array; replay reads NDJSON, one event per line (convert with: jq -c '.[]')", base+1)
	}
	dec, err := rn.decoder.Decode(ingest.Request{Body: bytes.NewReader(chunk), Received: unixTime(rn.clock)})
	var bodyErr *ingest.BodyError
	if errors.As(err, &bodyErr) {
		// Not one line of the chunk is JSON: each is rejected.
		for i := range decoded {
			rn.sum.reject("event %d: %s", base+ch.ordinal(i)+1, bodyErr.Error())
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("replay: events %d to %d: %w", base+1, base+ch.lines, err)
	}
	if dec.Total != decoded {
		dec.Release()
		return fmt.Errorf("replay: events %d to %d: decoded %d events from %d lines", base+1, base+ch.lines, dec.Total, decoded)
	}
	for _, rj := range dec.Rejected {
		rn.sum.reject("event %d: %s", base+ch.ordinal(rj.Index)+1, rj.Err)
	}
	// Results and rejections share the decoder's indexes, in order.
	index, next := 0, 0
	for i := range dec.Batch.Results {
		for next < len(dec.Rejected) && dec.Rejected[next].Index == index {
			index++
			next++
		}
		if err := rn.feed(&dec.Batch.Results[i], base+ch.ordinal(index)+1); err != nil {
			dec.Release()
			return err
		}
		index++
	}
	// The open batch may go on into the next chunk: its results point into
	// this chunk's buffers, which stay until the batch is applied.
	if len(rn.batch) > 0 {
		rn.held = append(rn.held, dec)
	} else {
		dec.Release()
	}
	return nil
}

// feed adds one result to the open batch, closing the batch first when the
// result falls outside it.
func (rn *run) feed(res *health.Result, event int) error {
	t := res.Time
	if t == 0 {
		rn.sum.reject("event %d: no timestamp: replay runs on the events' own clock", event)
		return nil
	}
	var lag int64
	if newest := rn.sum.Last.UnixNano(); !rn.sum.Last.IsZero() && t < newest-int64(rn.opts.BatchWindow) {
		lag = newest - t
	}
	if len(rn.batch) > 0 && (t >= rn.batchStart+int64(rn.opts.BatchWindow) || len(rn.batch) >= rn.opts.MaxBatch) {
		if err := rn.flush(); err != nil {
			return err
		}
	}
	if len(rn.batch) == 0 {
		rn.batchStart, rn.batchEnd = t, t
	}
	rn.batchEnd = max(rn.batchEnd, t)
	rn.batch = append(rn.batch, *res)
	rn.batchEvents = append(rn.batchEvents, event)
	rn.batchLags = append(rn.batchLags, lag)
	if rn.sum.First.IsZero() || t < rn.sum.First.UnixNano() {
		rn.sum.First = unixTime(t)
	}
	if t > rn.sum.Last.UnixNano() {
		rn.sum.Last = unixTime(t)
	}
	return nil
}

// late counts an event the engine kept that came lag after a newer one. A
// late retry of a result already applied, which the engine discards, is
// what Vector sends after a timeout and changes nothing.
func (rn *run) late(event int, lag time.Duration) {
	if rn.sum.Late == 0 {
		rn.sum.FirstLate = event
	}
	rn.sum.Late++
	rn.sum.LateBy = max(rn.sum.LateBy, lag)
}

// direct counts a result as check-to-pager routing would: a page when a
// check's result is critical and its previous one was not. It reports
// whether the result counted. A result the engine discards as a duplicate
// is not counted: the engine's rule (see engine.Engine.Apply) runs here per
// result, since an Outcome only counts a batch's duplicates. It follows the
// input alone: a restart's lost last-seen times or a forgotten host, after
// which the engine judges some late results differently, do not change
// what a pager receiving the same stream would do.
func (rn *run) direct(res *health.Result) bool {
	b := append(rn.keyBuf[:0], res.Region...)
	b = append(b, 0)
	b = append(b, res.Host...)
	b = append(b, 0)
	b = append(b, res.Check...)
	rn.keyBuf = b
	id := engine.HashEventID(res.EventID)
	i, seen := rn.checks[string(b)]
	if !seen {
		i = len(rn.last)
		rn.checks[string(b)] = i
		rn.last = append(rn.last, lastResult{})
	}
	last := &rn.last[i]
	switch {
	case !seen:
	case res.Time < last.time,
		id != 0 && id == last.eventID,
		id != 0 && id == last.prevID && res.Time == last.time,
		id == 0 && res.Time == last.time && res.Status == last.status:
		return false
	}
	last.time, last.prevID, last.eventID, last.status = res.Time, last.eventID, id, res.Status
	if res.Status != health.Passing {
		rn.sum.RawFailing++
	}
	critical := res.Status == health.Critical
	if critical && !last.critical {
		rn.sum.DirectPages++
	}
	last.critical = critical
	return true
}

// flush applies the open batch, received at its newest event time.
func (rn *run) flush() error {
	if len(rn.batch) == 0 {
		return nil
	}
	at := max(rn.batchEnd, rn.clock)
	if err := rn.advance(at); err != nil {
		return err
	}
	rn.out.Reset()
	rn.eng.Apply(&health.Batch{Received: unixTime(at), Results: rn.batch}, &rn.out)
	// The results not rejected count for direct routing, in arrival order.
	rejected := rn.out.Rejected
	if !slices.IsSortedFunc(rejected, byIndex) {
		slices.SortFunc(rejected, byIndex)
	}
	next := 0
	for i := range rn.batch {
		if next < len(rejected) && rejected[next].Index == i {
			rn.sum.reject("event %d: %s", rn.batchEvents[i], rejected[next].Err)
			next++
			continue
		}
		if rn.direct(&rn.batch[i]) && rn.batchLags[i] > 0 {
			rn.late(rn.batchEvents[i], time.Duration(rn.batchLags[i]))
		}
	}
	rn.absorb()
	rn.clock = at
	clear(rn.batch)
	rn.batch, rn.batchEvents, rn.batchLags = rn.batch[:0], rn.batchEvents[:0], rn.batchLags[:0]
	rn.release()
	return nil
}

func byIndex(a, b engine.Rejection) int { return a.Index - b.Index }

// release gives the held chunks' buffers back to the decoder.
func (rn *run) release() {
	for _, d := range rn.held {
		d.Release()
	}
	clear(rn.held)
	rn.held = rn.held[:0]
}

// advance runs the timers due up to at, in time order: restarts, windows,
// checkpoints, ticks. The first call starts the engine.
func (rn *run) advance(at int64) error {
	if !rn.started {
		if err := rn.start(at); err != nil {
			return err
		}
	}
	if gap := at - rn.nextTick; gap > int64(maxTickGap) {
		tick := int64(rn.tickEvery)
		rn.nextTick = at / tick * tick
	}
	for {
		t, do := rn.nextTimer()
		if t > at {
			return nil
		}
		if err := do(t); err != nil {
			return err
		}
		rn.clock = max(rn.clock, t)
	}
}

// nextTimer returns the earliest pending timer; on equal times restarts go
// first, then windows, then checkpoints, then ticks.
func (rn *run) nextTimer() (int64, func(int64) error) {
	t, do := rn.nextTick, rn.tick
	if rn.persisted != nil && rn.nextCkpt <= t {
		t, do = rn.nextCkpt, rn.checkpoint
	}
	if rn.wi < len(rn.windows) {
		if c := rn.windows[rn.wi].Created.UnixNano(); c <= t {
			t, do = c, rn.addWindow
		}
	}
	if rn.ri < len(rn.restarts) {
		if c := rn.restarts[rn.ri].UnixNano(); c <= t {
			t, do = c, rn.restart
		}
	}
	return t, do
}

// start starts a fresh engine at the first event. Windows created before
// then are applied at once; restarts before then are moot.
func (rn *run) start(at int64) error {
	eng, err := engine.New(rn.engineCfg)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	eng.Start(0, unixTime(at))
	rn.eng, rn.started, rn.clock = eng, true, at
	tick := int64(rn.tickEvery)
	rn.nextTick = (at/tick + 1) * tick
	rn.nextCkpt = at + int64(rn.ckptEvery)
	for rn.ri < len(rn.restarts) && rn.restarts[rn.ri].UnixNano() <= at {
		rn.ri++
	}
	for rn.wi < len(rn.windows) && rn.windows[rn.wi].Created.UnixNano() < at {
		if err := rn.addWindowAt(at); err != nil {
			return err
		}
	}
	return nil
}

func (rn *run) tick(at int64) error {
	rn.out.Reset()
	rn.eng.Tick(unixTime(at), &rn.out)
	rn.absorb()
	rn.nextTick += int64(rn.tickEvery)
	return nil
}

func (rn *run) checkpoint(at int64) error {
	rn.eng.Checkpoint(func(s *health.CheckState) { rn.persisted[s.Key] = *s })
	rn.nextCkpt = at + int64(rn.ckptEvery)
	return nil
}

func (rn *run) addWindow(at int64) error { return rn.addWindowAt(at) }

// addWindowAt applies the next window at time at (its Created time, or the
// start when it was created earlier).
func (rn *run) addWindowAt(at int64) error {
	w := rn.windows[rn.wi]
	rn.wi++
	if w.Until.UnixNano() <= at {
		return nil // over before the events reach it
	}
	rn.out.Reset()
	if err := rn.eng.AddWindow(w, unixTime(at), &rn.out); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if w.ID == "" {
		w.ID = engine.WindowID(w)
	}
	rn.sum.Windows++
	if rn.persisted != nil {
		rn.persistedWindows = append(rn.persistedWindows, w)
	}
	rn.absorb()
	return nil
}

// restart crashes the engine at time at and starts a new one from the
// persisted states and windows, as the server does after a crash: changes
// since the last checkpoint that were not in an Outcome are lost.
func (rn *run) restart(at int64) error {
	rn.ri++
	eng, err := engine.New(rn.engineCfg)
	if err != nil {
		return fmt.Errorf("replay: restart: %w", err)
	}
	keys := make([]health.Key, 0, len(rn.persisted))
	for k := range rn.persisted {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b health.Key) int {
		if c := strings.Compare(a.Region, b.Region); c != 0 {
			return c
		}
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return strings.Compare(a.Check, b.Check)
	})
	for _, k := range keys {
		st := rn.persisted[k]
		if err := eng.Load(&st); err != nil {
			return fmt.Errorf("replay: restart at %s: %w", unixTime(at).Format(time.RFC3339), err)
		}
	}
	// Windows stay on disk until the engine ends them, as in the store:
	// one that ended while the server was down is released, and journaled,
	// by the restarted engine's first call.
	for _, w := range rn.persistedWindows {
		eng.LoadWindow(w)
	}
	for _, f := range rn.persistedForgotten {
		eng.LoadForgottenHost(f)
	}
	now := unixTime(at)
	eng.Start(rn.eng.Seq(), now)
	rn.eng = eng
	rn.nextCkpt = at + int64(rn.ckptEvery)
	rn.sum.Restarts++
	return nil
}

// absorb accounts for the engine's last outcome.
func (rn *run) absorb() {
	out := &rn.out
	rn.sum.Duplicates += out.Duplicates
	for i := range out.Transitions {
		t := &out.Transitions[i]
		rn.sum.Transitions++
		if rn.opts.OnTransition != nil {
			rn.opts.OnTransition(t)
		}
		rn.book.observe(t)
	}
	if rn.persisted != nil {
		for _, st := range out.Changed {
			rn.persisted[st.Key] = st
		}
		// What the store deletes and keeps, in the order the tracker
		// commits an outcome.
		for _, k := range out.Forgotten {
			delete(rn.persisted, k)
		}
		rn.persistedForgotten = append(rn.persistedForgotten, out.ForgottenHosts...)
		if over := len(rn.persistedForgotten) - health.ForgottenHostsKept; over > 0 {
			rn.persistedForgotten = slices.Delete(rn.persistedForgotten, 0, over) // the oldest, as the store
		}
		if len(out.EndedWindows) > 0 {
			rn.persistedWindows = slices.DeleteFunc(rn.persistedWindows, func(w health.Window) bool {
				return slices.Contains(out.EndedWindows, w.ID)
			})
		}
	}
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
