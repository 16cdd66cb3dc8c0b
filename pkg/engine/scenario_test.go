package engine

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// TestScenarios replays the incidents of testdata/scenarios/*.txt through
// the engine. The format, one directive a line (# starts a comment):
//
//	rule GLOB [severity=S] [team=T] [confirm_after=N]
//	fleet REGION PREFIX COUNT CHECK,...   hosts PREFIX-01.. running the checks
//	set REGIONGLOB HOSTGLOB CHECKGLOB STATUS   what those checks report from now on
//	flap REGIONGLOB HOSTGLOB CHECKGLOB    alternate critical and passing
//	silence|resume REGIONGLOB HOSTGLOB    hosts stop or resume reporting
//	maintenance REGION HOST|* CHECKGLOB|* DURATION REASON...
//	run DURATION                          30 s rounds: one batch of every result, then a tick
//	restart                               checkpoint, load a new engine, start it
//	expect pages N [severity=S]           alerts that started firing since the last expect pages
//	expect suppressed REASON N            suppressed entries by reason
//	expect alerts                         the firing alerts, exactly, one a line until a blank line:
//	  host REGION HOST SEVERITY CHECK,... | host REGION HOST not_reporting | region REGION CHECK SEVERITY
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runScenario(t, file)
		})
	}
}

type scenarioCheck struct {
	key    health.Key
	status health.Status
	flap   bool
}

type scenario struct {
	t       *testing.T
	h       *harness
	cfg     Config
	checks  []*scenarioCheck
	silent  map[string]bool // region/host
	round   int
	pagesAt int // journal length at the last expect pages
}

func runScenario(t *testing.T, file string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := &scenario{t: t, cfg: cfg(nil), silent: map[string]bool{}}
	lines := bufio.NewScanner(f)
	n := 0
	next := func() (string, bool) {
		if !lines.Scan() {
			return "", false
		}
		n++
		return lines.Text(), true
	}
	for {
		line, ok := next()
		if !ok {
			break
		}
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		where := fmt.Sprintf("%s:%d", file, n)
		if fields[0] == "expect" && len(fields) == 2 && fields[1] == "alerts" {
			var want []string
			for {
				l, ok := next()
				if !ok || strings.TrimSpace(l) == "" {
					break
				}
				want = append(want, strings.Join(strings.Fields(l), " "))
			}
			equalLines(t, where+": firing alerts", sc.firing(), want)
			continue
		}
		if err := sc.do(fields); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	sc.h.mustVerify()
}

func (sc *scenario) engine() *harness {
	if sc.h == nil {
		sc.h = newHarness(sc.t, sc.cfg)
	}
	return sc.h
}

func (sc *scenario) do(f []string) error {
	arg := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	switch f[0] {
	case "rule":
		r := config.CheckRule{Match: arg(1)}
		for _, kv := range f[2:] {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "severity":
				r.Severity = v
			case "team":
				r.Team = v
			case "confirm_after":
				r.ConfirmAfter, _ = strconv.Atoi(v)
			default:
				return fmt.Errorf("unknown rule key %q", k)
			}
		}
		sc.cfg.Checks = append(sc.cfg.Checks, r)
	case "fleet":
		count, err := strconv.Atoi(arg(3))
		if err != nil {
			return fmt.Errorf("fleet count: %w", err)
		}
		for i := 1; i <= count; i++ {
			for _, c := range strings.Split(arg(4), ",") {
				sc.checks = append(sc.checks, &scenarioCheck{key: health.Key{Region: arg(1), Host: fmt.Sprintf("%s-%02d", arg(2), i), Check: c}})
			}
		}
	case "set", "flap":
		st := health.Critical
		if f[0] == "set" {
			var ok bool
			if st, ok = health.ParseStatus([]byte(arg(4))); !ok {
				return fmt.Errorf("bad status %q", arg(4))
			}
		}
		matched := 0
		for _, c := range sc.checks {
			if globs(c.key, arg(1), arg(2), arg(3)) {
				c.status, c.flap = st, f[0] == "flap"
				matched++
			}
		}
		if matched == 0 {
			return fmt.Errorf("%s matches no check", strings.Join(f, " "))
		}
	case "silence", "resume":
		for _, c := range sc.checks {
			if globs(c.key, arg(1), arg(2), "*") {
				sc.silent[c.key.Region+"/"+c.key.Host] = f[0] == "silence"
			}
		}
	case "maintenance":
		d, err := time.ParseDuration(arg(4))
		if err != nil {
			return err
		}
		h := sc.engine()
		w := health.Window{Region: arg(1), Until: h.now.Add(d), Reason: strings.Join(f[5:], " ")}
		if arg(2) != "*" {
			w.Host = arg(2)
		}
		if arg(3) != "*" {
			w.Check = arg(3)
		}
		w.ID = WindowID(w)
		h.addWindow(w)
	case "run":
		d, err := time.ParseDuration(arg(1))
		if err != nil {
			return err
		}
		for i := 0; i < int(d/(30*time.Second)); i++ {
			sc.runRound()
		}
	case "restart":
		sc.engine().restart(sc.cfg)
	case "expect":
		return sc.expect(f[1:])
	default:
		return fmt.Errorf("unknown directive %q", f[0])
	}
	return nil
}

func globs(k health.Key, region, host, check string) bool {
	r, _ := path.Match(region, k.Region)
	h, _ := path.Match(host, k.Host)
	c, _ := path.Match(check, k.Check)
	return r && h && c
}

func (sc *scenario) runRound() {
	h := sc.engine()
	h.now = h.now.Add(30 * time.Second)
	sc.round++
	var rs []health.Result
	for _, c := range sc.checks {
		if sc.silent[c.key.Region+"/"+c.key.Host] {
			continue
		}
		st := c.status
		if c.flap && sc.round%2 == 0 {
			st = health.Passing
		}
		r := res(c.key.Region, c.key.Host, c.key.Check, st)
		r.Interval = 30
		rs = append(rs, r)
	}
	h.apply(rs...)
	h.tick()
}

func (sc *scenario) expect(f []string) error {
	h := sc.engine()
	switch {
	case len(f) >= 2 && f[0] == "pages":
		want, err := strconv.Atoi(f[1])
		if err != nil {
			return err
		}
		sev := ""
		if len(f) == 3 {
			sev = strings.TrimPrefix(f[2], "severity=")
		}
		got := 0
		for _, tr := range h.journal[sc.pagesAt:] {
			if tr.Kind == health.AlertChanged && tr.To == health.AlertFiring && tr.From != health.AlertFiring &&
				(sev == "" || tr.Severity.String() == sev) {
				got++
			}
		}
		sc.pagesAt = len(h.journal)
		if got != want {
			return fmt.Errorf("%d pages, want %d:\n%s", got, want, strings.Join(alertTransitions(h.journal), "\n"))
		}
	case len(f) == 3 && f[0] == "suppressed":
		want, err := strconv.Atoi(f[2])
		if err != nil {
			return err
		}
		got := 0
		for _, a := range h.e.Alerts() {
			if a.Suppressed == f[1] {
				got++
			}
		}
		if got != want {
			return fmt.Errorf("%d alerts suppressed by %s, want %d", got, f[1], want)
		}
	default:
		return fmt.Errorf("unknown expectation %q", strings.Join(f, " "))
	}
	return nil
}

// firing renders the unsuppressed alerts in the scenario format.
func (sc *scenario) firing() []string {
	var out []string
	for _, a := range sc.engine().e.Alerts() {
		switch {
		case a.Suppressed != "":
		case a.Level == health.LevelRegion:
			out = append(out, fmt.Sprintf("region %s %s %s", a.Region, a.Check, a.Severity))
		case a.Check == health.NotReporting:
			out = append(out, fmt.Sprintf("host %s %s not_reporting", a.Region, a.Host))
		default:
			checks := slices.Clone(a.Checks)
			out = append(out, fmt.Sprintf("host %s %s %s %s", a.Region, a.Host, a.Severity, strings.Join(checks, ",")))
		}
	}
	return out
}
