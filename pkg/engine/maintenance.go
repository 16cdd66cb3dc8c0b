package engine

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// WindowID derives a window's ID from its contents, so that two instances
// creating the same window name it the same. It is FNV-1a, fixed for good:
// IDs are stored, shown and scripted against, and must not change with a
// release.
func WindowID(w health.Window) string {
	h := fnv.New64a()
	h.Write([]byte(strings.Join([]string{
		w.Region, w.Host, w.Check, w.Reason,
		strconv.FormatInt(w.Until.UnixNano(), 10), strconv.FormatInt(w.Created.UnixNano(), 10),
	}, "\x00")))
	return "mw-" + hex.EncodeToString(h.Sum(nil))
}

// AddWindow starts a maintenance window. The region is required, until must
// be after now and at most 10 years ahead, and the check glob valid; an
// invalid window is refused with an error wrapping ErrInvalidWindow. An
// empty ID is derived with
// WindowID; a window with an existing ID replaces it (to extend or narrow
// it). The alert transitions it causes are in out.
func (e *Engine) AddWindow(w health.Window, now time.Time, out *Outcome) error {
	e.mustStart("AddWindow")
	if err := validateWindow(&w, now); err != nil {
		return err
	}
	if w.Created.IsZero() {
		w.Created = now.UTC()
	}
	if w.ID == "" {
		w.ID = WindowID(w)
	}
	n := e.advance(now.UnixNano())
	if old := e.findWindow(w.ID); old != nil {
		e.dropWindow(old)
	}
	e.addWindow(w)
	e.settle(n, out)
	e.flushChanged(out)
	return nil
}

// ErrInvalidWindow wraps every reason AddWindow refuses a window for: the
// caller's mistake, not the engine's.
var ErrInvalidWindow = errors.New("invalid maintenance window")

// maxWindowYears bounds how far ahead a window may end. Beyond it an end
// time is a typo or a way to mute a host for good, and far beyond it
// (2262) it no longer fits the engine's nanosecond clock.
const maxWindowYears = 10

const maxWindowLength = maxWindowYears * 366 * 24 * time.Hour

func validateWindow(w *health.Window, now time.Time) error {
	var errs []error
	if w.Region == "" {
		errs = append(errs, errors.New("region is required"))
	}
	switch {
	case !w.Until.After(now):
		errs = append(errs, fmt.Errorf("until %s is not in the future", w.Until.Format(time.RFC3339)))
	case w.Until.Sub(now) > maxWindowLength:
		errs = append(errs, fmt.Errorf("until %s is more than %d years away", w.Until.Format(time.RFC3339), maxWindowYears))
	}
	if w.Check != "" {
		if _, err := path.Match(w.Check, ""); err != nil {
			errs = append(errs, fmt.Errorf("check glob %q: %w", w.Check, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidWindow, err)
	}
	return nil
}

// RemoveWindow ends a window early; false when no window has that ID.
func (e *Engine) RemoveWindow(id string, now time.Time, out *Outcome) bool {
	e.mustStart("RemoveWindow")
	w := e.findWindow(id)
	if w == nil {
		return false
	}
	n := e.advance(now.UnixNano())
	e.dropWindow(w)
	e.settle(n, out)
	e.flushChanged(out)
	return true
}

// LoadWindow restores a window at start-up; one that has ended is expired,
// journaled and listed in Outcome.EndedWindows by the first Apply or Tick
// after Start.
// A window without a region cannot match anything and is ignored.
func (e *Engine) LoadWindow(w health.Window) {
	if e.started {
		panic("engine: LoadWindow after Start")
	}
	if w.Region == "" {
		return
	}
	if old := e.findWindow(w.ID); old != nil {
		e.windows = slices.DeleteFunc(e.windows, func(x *window) bool { return x == old })
	}
	e.windows = append(e.windows, &window{Window: w, until: windowEnd(w.Until)})
}

// windowEnd is a window's Until on the engine's clock. A window persisted
// before AddWindow bounded Until may end past what UnixNano can hold: it
// ends at the clock's end instead of wrapping into the past, so it still
// covers, is listed and can be removed.
func windowEnd(until time.Time) int64 {
	switch {
	case until.After(maxClock):
		return math.MaxInt64
	case until.Before(epoch):
		return 0 // ended long ago
	}
	return until.UnixNano()
}

var epoch = time.Unix(0, 0)

var maxClock = time.Unix(0, math.MaxInt64)

// Windows returns the active windows sorted by Until.
func (e *Engine) Windows() []health.Window {
	ws := make([]health.Window, 0, len(e.windows))
	for _, w := range e.windows {
		if w.until > e.now {
			ws = append(ws, w.Window)
		}
	}
	return ws
}

func (e *Engine) findWindow(id string) *window {
	for _, w := range e.windows {
		if w.ID == id {
			return w
		}
	}
	return nil
}

func windowCompare(a, b *window) int {
	if a.until != b.until {
		if a.until < b.until {
			return -1
		}
		return 1
	}
	return strings.Compare(a.ID, b.ID)
}

func (e *Engine) addWindow(hw health.Window) {
	w := &window{Window: hw, until: windowEnd(hw.Until)}
	i, _ := slices.BinarySearchFunc(e.windows, w, windowCompare)
	e.windows = slices.Insert(e.windows, i, w)
	if ri, ok := e.regionIDs[w.Region]; ok {
		reg := e.regions[ri]
		reg.windows = append(reg.windows, w)
		e.windowChanged(reg, w)
	}
}

func (e *Engine) dropWindow(w *window) {
	e.windows = slices.DeleteFunc(e.windows, func(x *window) bool { return x == w })
	if ri, ok := e.regionIDs[w.Region]; ok {
		reg := e.regions[ri]
		reg.windows = slices.DeleteFunc(reg.windows, func(x *window) bool { return x == w })
		e.windowChanged(reg, w)
	}
}

// windowChanged re-derives what a window added or removed covers.
func (e *Engine) windowChanged(reg *region, w *window) {
	if w.Host != "" {
		if hi, ok := reg.hosts[w.Host]; ok {
			e.refreshHostMaint(reg, hi, false)
		}
		return
	}
	for _, hi := range reg.hostList {
		e.refreshHostMaint(reg, hi, false)
	}
	// A region-wide window suppresses region alerts too.
	for _, ru := range reg.rollups {
		if ru.state != stateInactive || ru.failing > 0 {
			e.markRollupDirty(ru)
		}
	}
	e.markRollupDirty(&reg.nr)
}

// expireWindows ends the windows whose Until has passed and lists them in
// out.EndedWindows.
func (e *Engine) expireWindows(now int64, out *Outcome) {
	for len(e.windows) > 0 && e.windows[0].until <= now {
		w := e.windows[0]
		e.dropWindow(w)
		out.EndedWindows = append(out.EndedWindows, w.ID)
	}
}
