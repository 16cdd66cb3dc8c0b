package engine

import (
	"slices"
	"strings"
	"testing"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// TestRegionsBounded: past the region cap a result for a new region is
// rejected with a reason and an error naming the region, while known
// regions keep working and a restart keeps every loaded region.
func TestRegionsBounded(t *testing.T) {
	h := newHarness(t, cfg(nil))
	h.e.regionsMax = 2
	out := h.apply(res("eu", "web-1", "disk", health.Passing), res("us", "web-1", "disk", health.Passing),
		res("ap", "web-1", "disk", health.Passing), res("eu", "web-2", "disk", health.Critical))
	if out.Accepted != 3 || len(out.Rejected) != 1 {
		t.Fatalf("accepted %d, rejected %+v; want 3 and 1", out.Accepted, out.Rejected)
	}
	rj := out.Rejected[0]
	if rj.Index != 2 || rj.Reason != RejectTooManyRegions || !strings.Contains(rj.Err, `new region "ap"`) {
		t.Fatalf("rejection %+v", rj)
	}
	if !slices.Equal(out.NewRegions, []string{"eu", "us"}) {
		t.Fatalf("new regions %v", out.NewRegions)
	}
	if got := len(h.e.Regions()); got != 2 {
		t.Fatalf("%d regions, want 2", got)
	}
	if out := h.apply(res("us", "web-9", "dns", health.Critical)); out.Accepted != 1 || len(out.Rejected) != 0 {
		t.Fatalf("a new host in a known region past the cap: accepted %d, rejected %+v", out.Accepted, out.Rejected)
	}
	if maxRegions < 1000 {
		t.Fatalf("maxRegions %d: a real fleet's regions must fit", maxRegions)
	}
}
