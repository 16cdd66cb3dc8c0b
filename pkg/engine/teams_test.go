package engine

import (
	"fmt"
	"testing"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// TestTeamsAreBounded: distinct team values from events are interned up to
// maxTeams; past it a new one is dropped (the check falls back to its
// rule's team) and counted, while known teams and rules' teams still work.
func TestTeamsAreBounded(t *testing.T) {
	c := cfg(func(e *config.Engine) { e.ConfirmAfter = 1 },
		config.CheckRule{Match: "lvm*", Team: "storage"})
	h := newHarness(t, c)
	withTeam := func(host, check, team string) health.Result {
		r := res("eu", host, check, health.Critical)
		r.Team = []byte(team)
		return r
	}
	var rs []health.Result
	for i := len(h.e.teams); i <= maxTeams; i++ { // "" and the rule's team are held already
		rs = append(rs, withTeam(fmt.Sprintf("h-%d", i), "disk", fmt.Sprintf("team-%d", i)))
	}
	h.apply(rs...)
	if got := h.e.Stats().TeamsDropped; got != 0 {
		t.Fatalf("%d teams dropped below the cap", got)
	}

	tests := []struct {
		name     string
		r        health.Result
		wantTeam string
		dropped  uint64
	}{
		{"new team past the cap", withTeam("x-1", "disk", "request-123"), "", 1},
		{"another one", withTeam("x-2", "disk", "request-456"), "", 2},
		{"known team", withTeam("x-3", "disk", "team-7"), "team-7", 2},
		{"new team past the cap on a rule's check: the rule's team", withTeam("x-4", "lvm-vg0", "request-789"), "storage", 3},
		{"no team", withTeam("x-5", "disk", ""), "", 3},
	}
	for _, tt := range tests {
		h.apply(tt.r)
		if got := h.e.Stats().TeamsDropped; got != tt.dropped {
			t.Errorf("%s: %d dropped, want %d", tt.name, got, tt.dropped)
		}
		if got := h.e.team(h.slotOf(t, "eu", string(tt.r.Host), string(tt.r.Check))); got != tt.wantTeam {
			t.Errorf("%s: team %q, want %q", tt.name, got, tt.wantTeam)
		}
	}
	if n := len(h.e.teams); n != maxTeams+1 {
		t.Fatalf("%d team names held, want %d", n, maxTeams+1)
	}

	// A restart loads persisted teams under the same bound.
	h.restart(c)
	if n := len(h.e.teams); n > maxTeams+1 {
		t.Fatalf("%d team names held after restart", n)
	}
	h.mustVerify()
}

// slotOf returns the check's slot.
func (h *harness) slotOf(t *testing.T, region, host, check string) *slot {
	t.Helper()
	reg := h.e.regions[h.e.regionIDs[region]]
	hst := &h.e.hosts[reg.hosts[host]]
	idx, ok := hst.find(h.e.nameIDs[check])
	if !ok {
		t.Fatalf("no check %s/%s/%s", region, host, check)
	}
	return &hst.checks[idx]
}
