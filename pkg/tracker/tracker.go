// Package tracker keeps the fleet's health state for a running server: it
// owns the engine and its lock, applies each decoded batch, and makes the
// outcome durable before the request is acknowledged.
//
// Tracker decides ordering and durability. Every engine call happens under
// one mutex, and the commit of its outcome is submitted to the store under
// the same mutex, so the disk sees states in the order the engine decided
// them. Waiting for the disk happens outside the lock, so concurrent
// requests share one fsync (group commit) instead of queueing behind it.
package tracker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/engine"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/ingest"
	"github.com/healthrouter/healthrouter/pkg/store"
)

// maxErrors bounds the per-event errors echoed in an ingest response; the
// rest are in the dead-letter store.
const maxErrors = 10

// Tracker is the engine plus its durable store, safe for concurrent use.
type Tracker struct {
	log   *zap.Logger
	store *store.Store
	now   func() time.Time
	cfg   config.Engine

	mu  sync.Mutex // serialises every engine call and commit submission
	eng *engine.Engine
	out engine.Outcome

	newRegion chan struct{}
	metrics   *Metrics
	// skipped counts the persisted checks left out at start-up, by reason
	// (skipUnreadable, skipInvalid); set by Open, read-only after.
	skipped map[string]int
	// checkpointMu makes checkpoints take turns: a round is sorted and
	// walked outside mu.
	checkpointMu sync.Mutex

	// healthMu guards what the commits' outcomes say of the disk, for
	// /readyz: since when they fail (zero while they succeed) and why.
	healthMu     sync.Mutex
	failingSince time.Time
	lastErr      error
	probe        *storeProbe // the empty commit Writable waits on, nil when none is out
	// commitFailures counts failed commit waits; a success clears the
	// failure only when none was recorded since its commit was submitted.
	commitFailures atomic.Uint64
}

// Open loads the persisted state into a new engine. now is the clock.
func Open(cfg *config.Config, st *store.Store, log *zap.Logger, now func() time.Time) (*Tracker, error) {
	eng, err := engine.New(engine.Config{Engine: cfg.Engine, Checks: cfg.Checks})
	if err != nil {
		return nil, err // says "engine: ..." already
	}
	t := &Tracker{
		log:       log,
		store:     st,
		now:       now,
		cfg:       cfg.Engine,
		eng:       eng,
		newRegion: make(chan struct{}, 1),
	}
	t.metrics = newMetrics(t)
	start := time.Now()
	invalid := 0
	loaded, unreadable, err := st.LoadChecks(func(cs *health.CheckState) error {
		// One record the engine refuses must not keep the fleet's state
		// from loading: leave it out, loudly.
		if err := eng.Load(cs); err != nil {
			invalid++
			log.Error("skipping invalid check record", zap.Stringer("key", cs.Key), zap.Error(err))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load checks: %w", err)
	}
	loaded -= invalid
	t.skipped = map[string]int{skipUnreadable: unreadable, skipInvalid: invalid}
	windows, err := st.Windows()
	if err != nil {
		return nil, fmt.Errorf("load maintenance windows: %w", err)
	}
	forgotten, err := st.ForgottenHosts()
	if err != nil {
		return nil, err
	}
	for _, f := range forgotten {
		eng.LoadForgottenHost(f)
	}
	clock := now()
	for _, w := range windows {
		// A window that ended while the server was down is loaded all the
		// same: it covers its alerts until the first Apply or Tick, whose
		// commit journals their release and deletes the window. Leaving it
		// out here would release its alerts with no journal entry.
		eng.LoadWindow(w)
	}
	seq, err := st.LastSeq()
	if err != nil {
		return nil, fmt.Errorf("read journal sequence: %w", err)
	}
	eng.Start(seq, clock)
	stats := eng.Stats()
	log.Info("state loaded",
		zap.Int("checks", loaded), zap.Int("skipped_unreadable", unreadable), zap.Int("skipped_invalid", invalid),
		zap.Int("hosts", stats.Hosts), zap.Int("regions", stats.Regions),
		zap.Int("firing", stats.Firing), zap.Int("maintenance_windows", len(eng.Windows())),
		zap.Int("forgotten_hosts", len(forgotten)),
		zap.Uint64("journal_seq", seq), zap.Duration("took", time.Since(start)))
	return t, nil
}

// Metrics is the tracker's Prometheus collector, for registration.
func (t *Tracker) Metrics() *Metrics { return t.metrics }

// NewRegions is signalled (coalesced) when a region is seen for the first
// time, so provisioning can give it a rule group without waiting.
func (t *Tracker) NewRegions() <-chan struct{} { return t.newRegion }

// Result is what an ingest request answers (DESIGN §1).
type Result struct {
	Accepted   int      `json:"accepted"`
	Duplicates int      `json:"duplicates"`
	Rejected   int      `json:"rejected"`
	Errors     []string `json:"errors"`
}

// Apply applies a decoded request and returns once its transitions are on
// disk: Submit and Wait in one call.
func (t *Tracker) Apply(ctx context.Context, d *ingest.Decoded, remote string) (Result, error) {
	p := t.Submit(d, remote)
	return p.Wait(ctx)
}

// Pending is a request the engine has applied and whose commit is
// submitted to the store, not yet known to be on disk. It holds nothing of
// the decoded request.
type Pending struct {
	t        *Tracker
	res      Result
	ticket   *store.Ticket
	failures uint64 // commitFailures when the commit was submitted
}

// Submit applies a decoded request to the engine and submits the commit of
// its outcome, without waiting for the disk. Once it returns, d may be
// released: the caller frees its decode resources before Wait, so a slow
// disk holds up acknowledgements, not decoding.
func (t *Tracker) Submit(d *ingest.Decoded, remote string) Pending {
	res := Result{}
	received := d.Batch.Received
	var dead []health.Rejected
	var errs []eventError
	for i := range d.Rejected {
		r := &d.Rejected[i]
		dead = append(dead, deadLetter(received, remote, r.Index, r.Reason, r.Err, r.Raw, r.Truncated))
		errs = append(errs, eventError{r.Index, r.Err})
		t.metrics.rejected(r.Reason)
	}

	t.mu.Lock()
	t.out.Reset()
	t.eng.Apply(&d.Batch, &t.out)
	out := &t.out
	for _, r := range out.Rejected {
		index := requestIndex(d.Rejected, r.Index)
		dead = append(dead, deadLetter(received, remote, index, r.Reason, r.Err, resultEvent(&d.Batch.Results[r.Index]), false))
		errs = append(errs, eventError{index, r.Err})
		t.metrics.rejected(r.Reason)
	}
	res.Accepted, res.Duplicates = out.Accepted, out.Duplicates
	res.Rejected = len(d.Rejected) + len(out.Rejected)
	p := Pending{t: t}
	newRegions := len(out.NewRegions) > 0
	p.failures = t.commitFailures.Load()
	p.ticket = t.store.Submit(t.commitLocked(dead))
	t.mu.Unlock()
	res.Errors = firstErrors(errs)
	p.res = res

	if newRegions {
		select {
		case t.newRegion <- struct{}{}:
		default:
		}
	}
	return p
}

// Wait returns the request's result once its transitions are on disk. An
// error means nothing may be acknowledged: the sender retries and dedup
// makes the retry harmless. Its events are counted once the commit is
// durable, as not_durable when the commit failed, or as abandoned when ctx
// ended first (the sender went away): that commit goes on. Transitions are
// counted by the store as it writes them.
func (p *Pending) Wait(ctx context.Context) (Result, error) {
	t := p.t
	err := t.waitCommit(ctx, p.ticket, p.failures)
	switch {
	case err == nil:
		t.metrics.applied(p.res.Accepted, p.res.Duplicates)
		return p.res, nil
	case gaveUp(err):
		t.metrics.abandoned(p.res.Accepted + p.res.Duplicates)
	default:
		t.metrics.notDurable(p.res.Accepted + p.res.Duplicates)
	}
	return p.res, fmt.Errorf("commit: %w", err)
}

// gaveUp reports whether a commit wait ended because its caller's context
// did, which says nothing of the commit: it is still queued.
func gaveUp(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// DeadLetter records a whole request that could not be decoded, so the
// operator can see what a sender got wrong even though the sender was told
// 400 and dropped it.
func (t *Tracker) DeadLetter(ctx context.Context, at time.Time, remote, reason, msg string, raw []byte, truncated bool) error {
	t.metrics.rejected(reason)
	failures := t.commitFailures.Load()
	ticket := t.store.Submit(&store.Commit{Rejected: []health.Rejected{deadLetter(at, remote, -1, reason, msg, raw, truncated)}})
	return t.waitCommit(ctx, ticket, failures)
}

// storeProbe is one empty commit whose outcome says whether the store
// writes again: it lands only after the failed commits before it.
type storeProbe struct {
	done chan struct{}
	err  error
}

// Writable reports whether the store can be expected to take a commit:
// at once while no failure is known; while commits fail, once a probe
// commit has landed, waiting no longer than ctx. Concurrent callers share
// one probe, so a flood of refused requests adds nothing to the queue.
// Ingest asks before applying anything: a request refused here changes
// no state, where one applied and then not acknowledged would leave the
// page set ahead of the disk.
func (t *Tracker) Writable(ctx context.Context) bool {
	t.healthMu.Lock()
	if t.failingSince.IsZero() {
		t.healthMu.Unlock()
		return true
	}
	p := t.probe
	if p == nil {
		p = &storeProbe{done: make(chan struct{})}
		t.probe = p
		failures := t.commitFailures.Load()
		ticket := t.store.Submit(&store.Commit{})
		go func() {
			// Ends at the store's next attempt, whatever its outcome, or
			// when the store closes.
			err := t.waitCommit(context.Background(), ticket, failures)
			t.healthMu.Lock()
			p.err, t.probe = err, nil
			t.healthMu.Unlock()
			close(p.done)
		}()
	}
	t.healthMu.Unlock()
	select {
	case <-p.done:
		return p.err == nil
	case <-ctx.Done():
		return false
	}
}

// StoreHealth is what the latest commits say of the disk.
type StoreHealth struct {
	// FailingSince is when commits started failing, zero while they
	// succeed. Ingest answers 503 meanwhile; the store retries.
	FailingSince time.Time
	// LastError is the latest commit failure, nil while they succeed.
	LastError error
}

// StoreHealth reports whether commits are failing (a full or broken disk),
// since when and why.
func (t *Tracker) StoreHealth() StoreHealth {
	t.healthMu.Lock()
	defer t.healthMu.Unlock()
	return StoreHealth{FailingSince: t.failingSince, LastError: t.lastErr}
}

// waitCommit waits for ticket and records what its outcome says of the
// disk. failures is commitFailures read before the commit was submitted.
// A success clears a failure only when no failure was recorded since: a
// commit submitted after the failure is written, or (empty) waits for the
// failed ones, after it, so its success shows the store writes again; an
// older one may have been satisfied before. A commit failing only in the
// background (a checkpoint) is the exception: empty commits do not wait
// for it, so the state may flip until it is written. A caller that gave
// up, or a store closing, says nothing of the disk.
func (t *Tracker) waitCommit(ctx context.Context, ticket *store.Ticket, failures uint64) error {
	err := ticket.Wait(ctx)
	switch {
	case err == nil:
		t.healthMu.Lock()
		if !t.failingSince.IsZero() && t.commitFailures.Load() == failures {
			t.log.Info("store commits succeed again", zap.Time("failing_since", t.failingSince))
			t.failingSince, t.lastErr = time.Time{}, nil
		}
		t.healthMu.Unlock()
	case gaveUp(err), errors.Is(err, store.ErrClosed):
	default:
		t.healthMu.Lock()
		t.commitFailures.Add(1)
		if t.failingSince.IsZero() {
			t.failingSince = t.now()
		}
		t.lastErr = err
		t.healthMu.Unlock()
	}
	return err
}

// commitLocked copies the outcome for the store: the engine reuses its
// buffers on the next call while the commit is written asynchronously.
// Windows that ended leave the store in the commit that journals the
// release of what they covered: deleted before it, a crash in between
// would restart with those alerts released and nothing journaled; after
// it, with the window back in force.
func (t *Tracker) commitLocked(dead []health.Rejected) *store.Commit {
	c := &store.Commit{Rejected: dead}
	if n := len(t.out.EndedWindows); n > 0 {
		c.DeletedWindows = append(make([]string, 0, n), t.out.EndedWindows...)
		for _, id := range t.out.EndedWindows {
			t.log.Info("maintenance window expired", zap.String("id", id))
		}
	}
	if n := len(t.out.Changed); n > 0 {
		c.States = append(make([]health.CheckState, 0, n), t.out.Changed...)
	}
	if n := len(t.out.Transitions); n > 0 {
		c.Transitions = append(make([]health.Transition, 0, n), t.out.Transitions...)
	}
	if n := len(t.out.Forgotten); n > 0 {
		c.Deleted = append(make([]health.Key, 0, n), t.out.Forgotten...)
	}
	if n := len(t.out.ForgottenHosts); n > 0 {
		c.ForgottenHosts = append(make([]health.ForgottenHost, 0, n), t.out.ForgottenHosts...)
	}
	return c
}

// hostsOf lists the distinct region/host of keys grouped by host, as the
// engine reports a forgotten host's checks together.
func hostsOf(keys []health.Key) []string {
	var out []string
	for i, k := range keys {
		if i == 0 || k.Region != keys[i-1].Region || k.Host != keys[i-1].Host {
			out = append(out, k.Region+"/"+k.Host)
		}
	}
	return out
}

// eventError is why one event of a request was rejected; index is its
// position in the request, -1 for the request as a whole.
type eventError struct {
	index int
	msg   string
}

// firstErrors renders the maxErrors rejections earliest in the request, in
// request order: the decoder's and the engine's are gathered apart.
func firstErrors(errs []eventError) []string {
	slices.SortStableFunc(errs, func(a, b eventError) int { return a.index - b.index })
	out := make([]string, 0, min(len(errs), maxErrors))
	for _, e := range errs[:min(len(errs), maxErrors)] {
		msg := e.msg
		if e.index >= 0 {
			msg = "event " + strconv.Itoa(e.index) + ": " + msg
		}
		out = append(out, msg)
	}
	return out
}

// requestIndex maps the engine's index of a result (its position among
// the valid results) to the event's position in the request: the results
// are the request's events in order, less the decoder's rejections, which
// are in order too.
func requestIndex(decoderRejected []ingest.Rejection, result int) int {
	index := result
	for _, r := range decoderRejected {
		if r.Index > index {
			break
		}
		index++
	}
	return index
}

// resultEvent renders a decoded result as an event in the contract's field
// names, for the dead-letter store: the decoder keeps no raw bytes of the
// events it accepted, so this is every field it decoded.
func resultEvent(r *health.Result) []byte {
	ev := struct {
		Region    string            `json:"region"`
		Host      string            `json:"host"`
		Check     string            `json:"check"`
		Status    string            `json:"status"`
		Timestamp string            `json:"timestamp,omitempty"`
		Output    string            `json:"output,omitempty"`
		Severity  string            `json:"severity,omitempty"`
		Team      string            `json:"team,omitempty"`
		Interval  int32             `json:"interval,omitempty"`
		EventID   string            `json:"event_id,omitempty"`
		Labels    map[string]string `json:"labels,omitempty"`
	}{
		Region: string(r.Region), Host: string(r.Host), Check: string(r.Check), Status: r.Status.String(),
		Output: string(r.Output), Team: string(r.Team), Interval: r.Interval, EventID: string(r.EventID),
	}
	if r.Time != 0 {
		ev.Timestamp = time.Unix(0, r.Time).UTC().Format(time.RFC3339Nano)
	}
	if r.Severity != health.SeverityNone {
		ev.Severity = r.Severity.String()
	}
	if len(r.Labels) > 0 {
		ev.Labels = make(map[string]string, len(r.Labels))
		for _, l := range r.Labels {
			ev.Labels[l.Key] = string(l.Value)
		}
	}
	b, err := json.Marshal(ev)
	if err != nil { // strings and numbers only: cannot happen
		return fmt.Appendf(nil, `{"region":%q,"host":%q,"check":%q}`, r.Region, r.Host, r.Check)
	}
	return b
}

// deadLetter is the stored record of a refused event. truncated says the
// decoder already cut raw; raw is capped again for events the engine
// refused, which are re-encoded from their decoded fields.
func deadLetter(at time.Time, remote string, index int, reason, msg string, raw []byte, truncated bool) health.Rejected {
	kept, cut := ingest.CapRaw(raw)
	return health.Rejected{Time: at, Reason: reason, Error: msg, Index: index, Remote: remote,
		Event: string(kept), Truncated: truncated || cut}
}

// Run ticks the engine (staleness, maintenance expiry) and checkpoints
// last-seen times until ctx ends, then writes a final checkpoint. The paced
// periodic checkpoint runs beside the ticks (it takes seconds at a million
// checks, and staleness must not wait for it); a checkpoint due while the
// previous one still runs is skipped.
func (t *Tracker) Run(ctx context.Context) {
	tick := time.NewTicker(t.cfg.TickEvery.D())
	defer tick.Stop()
	checkpoint := time.NewTicker(t.cfg.Checkpoint.D())
	defer checkpoint.Stop()
	var running sync.WaitGroup
	var busy atomic.Bool
	for {
		select {
		case <-ctx.Done():
			running.Wait() // it stops at its next part; the final one goes on from there
			// The final checkpoint gets its own deadline: ctx is done.
			final, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := t.Checkpoint(final)
			cancel()
			if err != nil {
				t.log.Error("final checkpoint failed", zap.Error(err))
			}
			return
		case <-tick.C:
			if err := t.Tick(ctx); err != nil {
				t.log.Error("tick commit failed", zap.Error(err))
			}
		case <-checkpoint.C:
			if !busy.CompareAndSwap(false, true) {
				t.metrics.checkpointed("skipped", 0, 0)
				t.log.Warn("checkpoint skipped: the previous one is still being written",
					zap.Duration("checkpoint", t.cfg.Checkpoint.D()))
				continue
			}
			running.Add(1)
			go func() {
				defer running.Done()
				defer busy.Store(false)
				start := time.Now()
				n, err := t.checkpoint(ctx, true)
				switch {
				case err == nil:
					t.metrics.checkpointed("written", n, time.Since(start))
				case ctx.Err() == nil:
					t.metrics.checkpointed("failed", n, 0)
					t.log.Error("checkpoint failed", zap.Error(err))
				}
			}()
		}
	}
}

// Tick advances the engine's clock and persists what it decided,
// deleting the checks of hosts forgotten after engine.forget_after and the
// maintenance windows that ended.
func (t *Tracker) Tick(ctx context.Context) error {
	now := t.now()
	t.mu.Lock()
	t.out.Reset()
	t.eng.Tick(now, &t.out)
	var forgotten []string
	if len(t.out.Forgotten) > 0 {
		forgotten = hostsOf(t.out.Forgotten)
	}
	failures := t.commitFailures.Load()
	ticket := t.store.Submit(t.commitLocked(nil))
	t.mu.Unlock()
	if len(forgotten) > 0 {
		t.log.Info("forgot hosts silent for engine.forget_after",
			zap.Int("hosts", len(forgotten)), zap.Duration("forget_after", t.cfg.ForgetAfter.D()),
			zap.Strings("first", forgotten[:min(len(forgotten), 20)]))
	}
	return t.waitCommit(ctx, ticket, failures)
}

// Checkpoint writes last-seen times and flap histories changed since the
// previous checkpoint, at full speed (the final checkpoint). Losing them in
// a crash loses no acknowledged transition; restart grants staleness a
// grace period instead. They go through the ordered commit path like
// everything else: a snapshot written on the side could land after, and
// overwrite, a newer committed state.
func (t *Tracker) Checkpoint(ctx context.Context) error {
	_, err := t.checkpoint(ctx, false)
	return err
}

// checkpoint writes one round in parts of checkpointPart states, each
// gathered and submitted under the engine lock, so that ingest gets the
// lock between parts: at a million checks one part held it for half a
// second. The round is sorted by key outside the lock, so that each part
// writes one range of keys. Each part is a Background commit:
// acknowledgements of requests that changed nothing do not wait for it.
//
// paced (the periodic checkpoint) keeps one part in flight and pauses after
// each as long as it took, so that the round uses about half a core instead
// of all of one: a burst of checkpoint work on a busy machine is what held
// up ingest. A round cut short by ctx is finished by the next checkpoint.
func (t *Tracker) checkpoint(ctx context.Context, paced bool) (written int, err error) {
	t.checkpointMu.Lock()
	defer t.checkpointMu.Unlock()
	t.mu.Lock()
	round := t.eng.StartCheckpoint()
	t.mu.Unlock()
	round.Sort()
	var last *store.Ticket
	var failures uint64 // commitFailures when last was submitted
	for more := true; more; {
		start := time.Now()
		c := &store.Commit{Background: true, States: make([]health.CheckState, 0, checkpointPart+checkpointPart/8)}
		t.mu.Lock()
		more = t.eng.CheckpointSome(round, checkpointPart, func(s *health.CheckState) { c.States = append(c.States, *s) })
		if len(c.States) > 0 {
			failures = t.commitFailures.Load()
			last = t.store.Submit(c)
		}
		t.mu.Unlock()
		written += len(c.States)
		switch {
		case !more:
		case paced && last != nil:
			if err := t.waitCommit(ctx, last, failures); err != nil {
				return written, fmt.Errorf("checkpoint part of %d states: %w", len(c.States), err)
			}
			pause := time.NewTimer(time.Since(start))
			select {
			case <-ctx.Done():
				pause.Stop()
				return written, ctx.Err()
			case <-pause.C:
			}
		default:
			runtime.Gosched()
		}
	}
	if last == nil {
		return 0, nil
	}
	// Commits are durable in order: the last part's ticket covers all.
	if err := t.waitCommit(ctx, last, failures); err != nil {
		return written, fmt.Errorf("checkpoint %d states: %w", written, err)
	}
	return written, nil
}

// checkpointPart is how many states a checkpoint gathers per hold of the
// engine lock: a few milliseconds' worth.
const checkpointPart = 8192

// ErrInvalidWindow wraps the engine's reasons for refusing a window.
var ErrInvalidWindow = engine.ErrInvalidWindow

// ErrUnknownWindow means no active maintenance window has the ID given.
var ErrUnknownWindow = errors.New("no active maintenance window")

// WindowChange is a maintenance window added or ended, in force in the
// engine.
type WindowChange struct {
	Window health.Window
	// Unconfirmed is why the change is not known to be on disk yet, nil
	// once it is: the wait for its commit ended first (ctx), or the write
	// failed (a full disk) and the store retries it, in order, until it
	// succeeds. The change is in force; a restart before it is written
	// would undo it. It is never withdrawn: the store's retry could land
	// it after all, and a client told "nothing changed" would make a
	// second window.
	Unconfirmed error
}

// AddWindow starts a maintenance window (one with the ID of an active
// window replaces it). The window is stored in the commit that holds the
// alert changes it causes, in order with every other commit, so a restart
// finds both or neither; AddWindow returns once that commit is on disk,
// or with Unconfirmed set when ctx ends or the write fails first. The only
// errors are the engine's refusals (ErrInvalidWindow).
func (t *Tracker) AddWindow(ctx context.Context, w health.Window) (WindowChange, error) {
	now := t.now()
	w.Created = now
	if w.ID == "" {
		w.ID = engine.WindowID(w) // as the engine would, but the commit needs it
	}
	t.mu.Lock()
	t.out.Reset()
	if err := t.eng.AddWindow(w, now, &t.out); err != nil {
		t.mu.Unlock()
		return WindowChange{Window: w}, err // ErrInvalidWindow and the reasons, for the client
	}
	c := t.commitLocked(nil)
	c.Windows = []health.Window{w}
	return WindowChange{Window: w, Unconfirmed: t.submitLocked(ctx, c)}, nil
}

// RemoveWindow ends a maintenance window early; ErrUnknownWindow when no
// active window has that ID. The window leaves the store in the commit
// that journals the release of its alerts; as for AddWindow, Unconfirmed
// says when that commit is not known to be on disk yet.
func (t *Tracker) RemoveWindow(ctx context.Context, id string) (WindowChange, error) {
	now := t.now()
	t.mu.Lock()
	w, ok := t.windowLocked(id)
	if !ok {
		t.mu.Unlock()
		return WindowChange{}, fmt.Errorf("%w %q", ErrUnknownWindow, id)
	}
	t.out.Reset()
	t.eng.RemoveWindow(id, now, &t.out)
	c := t.commitLocked(nil)
	c.DeletedWindows = append(c.DeletedWindows, id)
	return WindowChange{Window: w, Unconfirmed: t.submitLocked(ctx, c)}, nil
}

// submitLocked submits c, releases t.mu and waits for c to be on disk.
func (t *Tracker) submitLocked(ctx context.Context, c *store.Commit) error {
	failures := t.commitFailures.Load()
	ticket := t.store.Submit(c)
	t.mu.Unlock()
	return t.waitCommit(ctx, ticket, failures)
}

// windowLocked returns the active window with that ID.
func (t *Tracker) windowLocked(id string) (health.Window, bool) {
	ws := t.eng.Windows()
	if i := slices.IndexFunc(ws, func(w health.Window) bool { return w.ID == id }); i >= 0 {
		return ws[i], true
	}
	return health.Window{}, false
}

// ErrUnknownHost means no host of that name is tracked (in that region).
var ErrUnknownHost = errors.New("unknown host")

// ErrAmbiguousHost means a host name is tracked in several regions and no
// region was given to say which one.
var ErrAmbiguousHost = errors.New("host name is tracked in several regions")

// ForgetHost removes a decommissioned host, its checks and their alerts
// from the engine and, in the same ordered commit, the store, so a restart
// does not bring it back. region may be empty when the host name is tracked
// in one region only. It returns the keys removed; an error after the host
// was forgotten is a commit failure, retried by the store like any other.
func (t *Tracker) ForgetHost(ctx context.Context, region, host string) ([]health.Key, error) {
	now := t.now()
	t.mu.Lock()
	if region == "" {
		regions := t.eng.HostRegions(host)
		switch len(regions) {
		case 0:
			t.mu.Unlock()
			return nil, fmt.Errorf("%w %q", ErrUnknownHost, host)
		case 1:
			region = regions[0]
		default:
			t.mu.Unlock()
			return nil, fmt.Errorf("%w: %q is in regions %s; give the region", ErrAmbiguousHost, host, strings.Join(regions, ", "))
		}
	}
	t.out.Reset()
	keys, ok := t.eng.ForgetHost(region, host, now, &t.out)
	if !ok {
		t.mu.Unlock()
		return nil, fmt.Errorf("%w %q in region %q", ErrUnknownHost, host, region)
	}
	failures := t.commitFailures.Load()
	ticket := t.store.Submit(t.commitLocked(nil))
	t.mu.Unlock()
	t.log.Info("host forgotten", zap.String("region", region), zap.String("host", host), zap.Int("checks", len(keys)))
	if err := t.waitCommit(ctx, ticket, failures); err != nil {
		return keys, fmt.Errorf("commit forgetting %s/%s: %w", region, host, err)
	}
	return keys, nil
}

// Read side: each call takes the lock briefly and returns copies.

// Alerts is the alert set: firing and suppressed.
func (t *Tracker) Alerts() []health.Alert {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eng.Alerts()
}

// Windows lists active maintenance windows.
func (t *Tracker) Windows() []health.Window {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eng.Windows()
}

// RegionInfos summarises every region.
func (t *Tracker) RegionInfos() []engine.RegionInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eng.Regions()
}

// Hosts lists the hosts of a region ("" for all).
func (t *Tracker) Hosts(region string) []engine.HostInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eng.Hosts(region)
}

// HostsPage lists up to limit hosts of a region ("" for all) from offset,
// in (region, name) order, and their total.
func (t *Tracker) HostsPage(region string, offset, limit int) ([]engine.HostInfo, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eng.HostsPage(region, offset, limit)
}

// HostChecks lists the checks of a host.
func (t *Tracker) HostChecks(host string) []engine.CheckInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eng.HostChecks(host)
}

// Explain says why a host or check does or does not page; region may be
// "" when the host name is tracked in one region only.
func (t *Tracker) Explain(region, host, check string) engine.Explanation {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eng.ExplainIn(region, host, check)
}

// ExplainRegion says why a region alert for a check pages or not.
func (t *Tracker) ExplainRegion(region, check string) engine.Explanation {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eng.ExplainRegion(region, check)
}

// Stats are the engine's counters.
func (t *Tracker) Stats() engine.Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eng.Stats()
}

// Transitions reads the journal.
func (t *Tracker) Transitions(after uint64, limit int) ([]health.Transition, error) {
	return t.store.Transitions(after, limit)
}

// ScanTransitions walks the journal oldest first from after.
func (t *Tracker) ScanTransitions(after uint64, fn func(*health.Transition) bool) error {
	return t.store.ScanTransitions(after, fn)
}

// Rejected reads the dead-letter store, newest first.
func (t *Tracker) Rejected(limit int) ([]health.Rejected, error) {
	return t.store.Rejected(limit)
}

// Region is a region and when it last reported, for provisioning.
type Region struct {
	Name     string
	LastSeen time.Time
}

// Regions lists the regions seen, sorted by name.
func (t *Tracker) Regions() []Region {
	infos := t.RegionInfos()
	out := make([]Region, len(infos))
	for i, r := range infos {
		out[i] = Region{Name: r.Name, LastSeen: r.LastEvent}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
