package engine

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// TestRegionOutageOverSeveralBatches: an outage that reaches a region's
// hosts one batch at a time (each batch is the whole fleet's round of
// results, with the failure spread to the next hosts) ends with one region
// alert and every failing host's entry suppressed by region. Before the
// rollup reaches its thresholds the engine has nothing to group, so the
// first hosts' alerts fire on their own and are suppressed when the region
// alert forms. Those transient host alerts are the engine's true answer;
// what keeps them from paging is Grafana's pending period on the host rule
// (longer than the outage takes to reach the thresholds), and in its
// absence the PagerDuty fallback's own delay: both are modelled in replay,
// not here. The test pins exactly which hosts fire transiently.
func TestRegionOutageOverSeveralBatches(t *testing.T) {
	tests := []struct {
		name           string
		hosts          int
		confirmAfter   int
		minHosts       int
		perBatch       int // hosts newly failing per batch
		wantTransient  []string
		wantRatio      float64
		wantFormsRound int // the batch (from 1) at which the region alert fires
	}{
		{"one host per batch, confirm_after 1", 10, 1, 3, 1, []string{"h-00", "h-01"}, 1, 3},
		{"one host per batch, confirm_after 2", 10, 2, 3, 1, []string{"h-00", "h-01"}, 1, 4},
		{"ratio above min_hosts: 20 hosts need 6", 20, 1, 3, 1, []string{"h-00", "h-01", "h-02", "h-03", "h-04"}, 1, 6},
		{"min_hosts above ratio: 4 hosts need 3", 4, 1, 3, 1, []string{"h-00", "h-01"}, 1, 3},
		{"two hosts per batch", 10, 1, 3, 2, []string{"h-00", "h-01"}, 1, 2},
		{"the whole threshold in one batch", 10, 1, 3, 3, nil, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, cfg(func(e *config.Engine) {
				e.ConfirmAfter = tt.confirmAfter
				e.Region.MinHosts = tt.minHosts
				e.Region.OutageRatio = 0.3
			}))
			round := func(failing int) []health.Result {
				var rs []health.Result
				for i := 0; i < tt.hosts; i++ {
					st := health.Passing
					if i < failing {
						st = health.Critical
					}
					rs = append(rs, res("eu", hostName(i), "conn", st), res("eu", hostName(i), "cpu", health.Passing))
				}
				return rs
			}
			h.apply(round(0)...)
			fired := map[string]bool{}
			formed := 0
			// Enough rounds for every host to fail and be confirmed.
			rounds := (tt.hosts+tt.perBatch-1)/tt.perBatch + tt.confirmAfter
			for r := 1; r <= rounds; r++ {
				h.now = h.now.Add(30 * time.Second)
				out := h.apply(round(min(r*tt.perBatch, tt.hosts))...)
				for _, x := range out.Transitions {
					if x.Kind != health.AlertChanged || x.To != health.AlertFiring || x.From == health.AlertFiring {
						continue
					}
					switch x.Level {
					case health.LevelHost:
						fired[x.Key.Host] = true
					case health.LevelRegion:
						if formed != 0 {
							t.Fatalf("round %d: region alert fired again (first at round %d)", r, formed)
						}
						formed = r
					}
				}
				h.mustVerify()
			}
			var transient []string
			for host := range fired {
				transient = append(transient, host)
			}
			slices.Sort(transient)
			if !slices.Equal(transient, tt.wantTransient) {
				t.Errorf("host alerts fired before the region formed: %v, want %v", transient, tt.wantTransient)
			}
			if formed != tt.wantFormsRound {
				t.Errorf("region alert formed at round %d, want %d", formed, tt.wantFormsRound)
			}
			want := []string{}
			for i := 0; i < tt.hosts; i++ {
				want = append(want, fmt.Sprintf("host eu %s/conn suppressed=region", hostName(i)))
			}
			want = append(want, fmt.Sprintf("region eu conn critical %.2f", tt.wantRatio))
			equalLines(t, "alert set after the outage", alertLines(h.e.Alerts()), want)
			if s := h.e.Stats(); s.Firing != 1 {
				t.Errorf("%d alerts firing, want only the region's: %s", s.Firing, strings.Join(alertLines(h.e.Alerts()), "; "))
			}
		})
	}
}
