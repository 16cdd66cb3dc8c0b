package report

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// alertAt is one alert journal entry: key is REGION/HOST/CHECK.
func alertAt(off time.Duration, level health.Level, key, from, to string, sev health.Severity, reason string) health.Transition {
	parts := strings.Split(key, "/")
	return health.Transition{Time: t0.Add(off), Kind: health.AlertChanged, Level: level,
		Key: health.Key{Region: parts[0], Host: parts[1], Check: parts[2]}, From: from, To: to, Severity: sev, Reason: reason}
}

func TestPager(t *testing.T) {
	const (
		host   = health.LevelHost
		region = health.LevelRegion
		crit   = health.SeverityCritical
		warn   = health.SeverityWarning
	)
	m := time.Minute
	for _, tc := range []struct {
		name    string
		journal []health.Transition
		end     time.Duration
		// fired lists "OFFSET CHECK SEVERITY" for each series Grafana fires.
		fired []string
		// ended lists "CHECK fired|brief" for each series an entry ends.
		ended []string
	}{
		{"host alert outlives its pending period", []health.Transition{
			alertAt(0, host, "r1/a/raid", "inactive", "firing", crit, ""),
			alertAt(5*m, host, "r1/a/raid", "firing", "inactive", crit, ""),
		}, 10 * m, []string{"2m0s raid critical"}, []string{"raid fired"}},
		{"host alert resolves within it", []health.Transition{
			alertAt(0, host, "r1/a/raid", "inactive", "firing", crit, ""),
			alertAt(m, host, "r1/a/raid", "firing", "inactive", crit, ""),
		}, 10 * m, nil, []string{"raid brief"}},
		{"exactly the pending period fires", []health.Transition{
			alertAt(0, region, "r1/-/dns", "inactive", "firing", crit, ""),
			alertAt(m, region, "r1/-/dns", "firing", "inactive", crit, ""),
		}, 10 * m, []string{"1m0s dns critical"}, []string{"dns fired"}},
		{"suppression ends a pending series", []health.Transition{
			alertAt(0, region, "r1/-/dns", "inactive", "firing", crit, ""),
			alertAt(30*time.Second, region, "r1/-/dns", "firing", "suppressed", crit, "maintenance"),
			alertAt(5*m, region, "r1/-/dns", "suppressed", "firing", crit, "maintenance"),
		}, 10 * m, []string{"6m0s dns critical"}, []string{"dns brief"}},
		{"a severity change is a new series", []health.Transition{
			alertAt(0, region, "r1/-/dns", "inactive", "firing", warn, ""),
			alertAt(30*time.Second, region, "r1/-/dns", "firing", "firing", crit, "severity"),
		}, 10 * m, []string{"1m30s dns critical"}, []string{"dns brief"}},
		{"still pending at the end", []health.Transition{
			alertAt(0, host, "r1/a/raid", "inactive", "firing", crit, ""),
		}, m, nil, nil},
		{"host and silent host are separate series, fired in deadline order", []health.Transition{
			alertAt(0, host, "r1/a/raid", "inactive", "firing", crit, ""),
			alertAt(10*time.Second, region, "r1/-/lvm", "inactive", "firing", crit, ""),
			alertAt(20*time.Second, host, "r1/a/not_reporting", "inactive", "firing", crit, ""),
			alertAt(30*time.Second, host, "r1/a/raid", "firing", "inactive", crit, ""),
		}, 10 * m, []string{"1m10s lvm critical", "2m20s not_reporting critical"}, []string{"raid brief"}},
		{"check entries are not series", []health.Transition{
			alertAt(0, host, "r1/a/ntp", "inactive", "suppressed", crit, "flapping"),
			{Time: t0, Kind: health.CheckChanged, Key: health.Key{Region: "r1", Host: "a", Check: "ntp"}, From: "soft", To: "hard"},
		}, 10 * m, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fired, ended []string
			p := NewPager(DefaultPending(), func(s *Series, at time.Time) {
				fired = append(fired, fmt.Sprintf("%s %s %s", at.Sub(t0), s.Check, s.Severity))
			})
			for i := range tc.journal {
				if e, ok := p.Observe(&tc.journal[i]); ok {
					what := "brief"
					if e.Fired {
						what = "fired"
					}
					ended = append(ended, e.Series.Check+" "+what)
				}
			}
			p.Advance(t0.Add(tc.end))
			if !reflect.DeepEqual(fired, tc.fired) || !reflect.DeepEqual(ended, tc.ended) {
				t.Errorf("fired %q ended %q, want %q and %q", fired, ended, tc.fired, tc.ended)
			}
		})
	}
}

// TestPagerWithoutPending: a zero pending period fires a series as it
// starts, so that a configuration without one replays as Grafana runs it.
func TestPagerWithoutPending(t *testing.T) {
	var fired []time.Time
	p := NewPager(Pending{}, func(_ *Series, at time.Time) { fired = append(fired, at) })
	tr := alertAt(time.Minute, health.LevelHost, "r1/a/raid", "inactive", "firing", health.SeverityCritical, "")
	p.Observe(&tr)
	if len(fired) != 1 || !fired[0].Equal(tr.Time) || p.Waiting() != 0 {
		t.Errorf("fired at %v, %d waiting: want once at %s", fired, p.Waiting(), tr.Time)
	}
}

func TestPendingOf(t *testing.T) {
	if got := PendingOf(nil); got != DefaultPending() {
		t.Errorf("no config: %+v, want the defaults", got)
	}
	if got := PendingOf(config.Default()); got != DefaultPending() {
		t.Errorf("no grafana section: %+v, want the defaults", got)
	}
	cfg := config.Default()
	cfg.Grafana = &config.Grafana{Pending: config.Pending{Host: config.Duration(5 * time.Minute)}}
	if got := PendingOf(cfg); got != (Pending{Host: 5 * time.Minute}) {
		t.Errorf("host 5m, region 0: %+v", got)
	}
	if DefaultPending().For(health.LevelRegion) != time.Minute || DefaultPending().For(health.LevelHost) != 2*time.Minute {
		t.Errorf("For: %+v", DefaultPending())
	}
}

// TestPagerQueueStaysBounded: a long journal of brief alerts does not grow
// the queue with it.
func TestPagerQueueStaysBounded(t *testing.T) {
	p := NewPager(DefaultPending(), nil)
	for i := range 10000 {
		off := time.Duration(i) * time.Minute
		on := alertAt(off, health.LevelHost, "r1/a/raid", "inactive", "firing", health.SeverityCritical, "")
		off2 := alertAt(off+time.Second, health.LevelHost, "r1/a/raid", "firing", "inactive", health.SeverityCritical, "")
		p.Observe(&on)
		p.Observe(&off2)
	}
	if n := len(p.queue[0]); n > 200 {
		t.Errorf("host queue holds %d entries after 10,000 ended series", n)
	}
}

// TestReportCountsOpenSeriesAtNow: an alert still firing when the journal
// is read pages once its pending period has elapsed by Options.Now.
func TestReportCountsOpenSeriesAtNow(t *testing.T) {
	journal := []health.Transition{
		alertAt(0, health.LevelHost, "r1/a/raid", "inactive", "firing", health.SeverityCritical, ""),
	}
	for _, tc := range []struct {
		now  time.Time
		want int
	}{{time.Time{}, 0}, {t0.Add(time.Minute), 0}, {t0.Add(2 * time.Minute), 1}} {
		r, err := Build(scanOf(journal), Options{Now: tc.now})
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, c := range r.Checks {
			got += c.Pages
		}
		if got != tc.want {
			t.Errorf("now %s: %d pages, want %d", tc.now, got, tc.want)
		}
	}
}

// TestPagerFiresBeforeLaterEntries: a series due before an entry fires
// while Observe takes the entry, whatever the entry is about, so a timeline
// printed entry by entry stays in time order.
func TestPagerFiresBeforeLaterEntries(t *testing.T) {
	m := time.Minute
	check := health.Transition{Time: t0.Add(3 * m), Kind: health.CheckChanged,
		Key: health.Key{Region: "r1", Host: "b", Check: "disk"}, From: health.PhaseSoft, To: health.PhaseHard}
	for _, tc := range []struct {
		name  string
		entry health.Transition
	}{
		{"another alert suppressed", alertAt(3*m, health.LevelHost, "r1/b/disk", "inactive", "suppressed",
			health.SeverityCritical, "region")},
		{"another alert released", alertAt(3*m, health.LevelHost, "r1/b/disk", "suppressed", "inactive",
			health.SeverityCritical, "region")},
		{"a check entry", check},
		{"another alert firing", alertAt(3*m, health.LevelHost, "r1/b/disk", "inactive", "firing",
			health.SeverityCritical, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var order []string
			p := NewPager(DefaultPending(), func(s *Series, at time.Time) {
				order = append(order, fmt.Sprintf("%s fired at %s", s.Host, at.Sub(t0)))
			})
			first := alertAt(0, health.LevelHost, "r1/a/raid", "inactive", "firing", health.SeverityCritical, "")
			p.Observe(&first)
			p.Observe(&tc.entry)
			order = append(order, fmt.Sprintf("entry at %s", tc.entry.Time.Sub(t0)))
			if want := []string{"a fired at 2m0s", "entry at 3m0s"}; !reflect.DeepEqual(order, want) {
				t.Errorf("order %q, want %q", order, want)
			}
		})
	}
}
