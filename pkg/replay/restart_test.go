package replay_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/replay"
)

// TestRestartKeepsWhatTheStoreKeeps: a simulated restart loads what the
// server's store would hold, so the alert timeline and the journal are
// the same with and without it, also when a maintenance window ended or a
// host was forgotten just before it.
func TestRestartKeepsWhatTheStoreKeeps(t *testing.T) {
	base := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	events := func(rounds int, line func(ts time.Time, host int) string) []byte {
		var b bytes.Buffer
		for i := 0; i <= rounds; i++ {
			ts := base.Add(time.Duration(i) * 30 * time.Second)
			for h := 1; h <= 4; h++ {
				if l := line(ts, h); l != "" {
					b.WriteString(l + "\n")
				}
			}
		}
		return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	}
	event := func(ts time.Time, host int, status string) string {
		return fmt.Sprintf(`{"region":"eu","host":"web-%d","check":"disk","status":%q,"timestamp":%q}`, host, status, ts.Format(time.RFC3339))
	}
	tests := []struct {
		name     string
		data     []byte
		cfg      func(*config.Config)
		windows  []health.Window
		restarts []time.Duration
		pages    int
	}{
		{
			// web-1 fails under a drain window that ends at +302s; the
			// restart comes after the end but before any event releases it.
			name: "window ended just before the restart",
			data: events(40, func(ts time.Time, h int) string {
				if h == 1 {
					return event(ts, h, "critical")
				}
				return event(ts, h, "passing")
			}),
			windows:  []health.Window{{Region: "eu", Host: "web-1", Created: base, Until: base.Add(302 * time.Second), Reason: "drain"}},
			restarts: []time.Duration{302 * time.Second, 303 * time.Second, 304 * time.Second},
			pages:    1,
		},
		{
			// web-3 and web-4 are decommissioned at 2 minutes and forgotten
			// 20 minutes later; the restart comes after that. A result of
			// web-3's from before its forgetting, delivered late after the
			// restart, is ignored as the tombstone says, not taken for a
			// host come back.
			name: "hosts forgotten before the restart",
			data: events(120, func(ts time.Time, h int) string {
				switch {
				case h == 3 && ts.Sub(base) == 45*time.Minute:
					return event(base.Add(90*time.Second), 3, "critical")
				case h >= 3 && ts.Sub(base) > 2*time.Minute:
					return ""
				}
				return event(ts, h, "passing")
			}),
			cfg:      func(c *config.Config) { c.Engine.ForgetAfter = config.Duration(20 * time.Minute) },
			restarts: []time.Duration{40 * time.Minute},
			pages:    2, // their not_reporting alerts, once each
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := func(restart time.Duration) (*replay.Summary, []string) {
				cfg := config.Default()
				if tt.cfg != nil {
					tt.cfg(cfg)
				}
				var journal []string
				opts := replay.Options{Config: cfg, Windows: tt.windows, OnTransition: func(tr *health.Transition) {
					journal = append(journal, fmt.Sprintf("%s %s %s %s>%s %s", tr.Time.Format("15:04:05"), tr.Kind, tr.Key, tr.From, tr.To, tr.Reason))
				}}
				if restart > 0 {
					opts.Restarts = []time.Time{base.Add(restart)}
				}
				r, err := replay.New(opts)
				if err != nil {
					t.Fatal(err)
				}
				sum, err := r.Run(context.Background(), bytes.NewReader(tt.data))
				if err != nil {
					t.Fatal(err)
				}
				return sum, journal
			}
			without, withoutJournal := run(0)
			if without.Pages != tt.pages {
				t.Fatalf("without a restart: %d pages, want %d; alerts %+v", without.Pages, tt.pages, without.Alerts)
			}
			for _, at := range tt.restarts {
				with, withJournal := run(at)
				if with.Restarts != 1 {
					t.Fatalf("restart at +%v: %d restarts", at, with.Restarts)
				}
				if with.Pages != without.Pages || !reflect.DeepEqual(with.Alerts, without.Alerts) {
					t.Errorf("restart at +%v: %d pages, alerts %+v\nwithout a restart: %d pages, alerts %+v",
						at, with.Pages, with.Alerts, without.Pages, without.Alerts)
				}
				if !slices.Equal(withJournal, withoutJournal) {
					t.Errorf("restart at +%v: journal\n  %s\nwithout a restart:\n  %s", at,
						strings.Join(withJournal, "\n  "), strings.Join(withoutJournal, "\n  "))
				}
			}
		})
	}
}
