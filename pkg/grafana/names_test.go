package grafana

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestMakeUID(t *testing.T) {
	tests := []struct {
		prefix, name string
		want         string // exact, or "" to check only validity and uniqueness
	}{
		{"hr-host-", "eu-west-1", "hr-host-eu-west-1"},
		{"hr-host-", "eu_west_1", "hr-host-eu_west_1"},
		{"hr-host-", "eu.west.1", ""},
		{"hr-host-", "eu west 1", ""},
		{"hr-host-", strings.Repeat("x", 60), ""},
		{"hr-pd-", "région", ""},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got := makeUID(tt.prefix, tt.name)
		if !validUID(got) {
			t.Errorf("makeUID(%q, %q) = %q, not a valid uid", tt.prefix, tt.name, got)
		}
		if tt.want != "" && got != tt.want {
			t.Errorf("makeUID(%q, %q) = %q, want %q", tt.prefix, tt.name, got, tt.want)
		}
		if !strings.HasPrefix(got, tt.prefix) {
			t.Errorf("%q lost its prefix", got)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("%q and %q share uid %q", other, tt.name, got)
		}
		seen[got] = tt.name
	}
	if makeUID("hr-host-", "a.b") == makeUID("hr-host-", "a,b") {
		t.Error("names differing only in cleaned characters collide")
	}
}

func TestGroupName(t *testing.T) {
	tests := []struct {
		region  string
		same    bool // the group is named after the region verbatim
		maxLen  int
		noSlash bool
	}{
		{"eu-west-1", true, 190, true},
		{"Europe (Paris)", true, 190, true},
		{"a/b", false, 190, true},
		{PipelineGroup, false, 190, true},
		{" padded ", false, 190, true},
		{strings.Repeat("r", 300), false, 190, true},
		{strings.Repeat("é", 120), false, 190, true},
	}
	for _, tt := range tests {
		got := groupName(tt.region)
		if (got == tt.region) != tt.same {
			t.Errorf("groupName(%q) = %q", tt.region, got)
		}
		if len(got) > tt.maxLen || (tt.noSlash && strings.Contains(got, "/")) || got == PipelineGroup {
			t.Errorf("groupName(%q) = %q: not a usable group name", tt.region, got)
		}
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		d    time.Duration
		prom string
	}{
		{0, "0s"}, {30 * time.Second, "30s"}, {5 * time.Minute, "5m"}, {90 * time.Minute, "1h30m"},
		{4 * time.Hour, "4h"}, {168 * time.Hour, "7d"}, {1500 * time.Millisecond, "1s500ms"},
	}
	for _, tt := range tests {
		if got := promDuration(tt.d); got != tt.prom {
			t.Errorf("promDuration(%s) = %s, want %s", tt.d, got, tt.prom)
		}
		if back, ok := parseDuration(tt.prom); !ok || back != tt.d {
			t.Errorf("parseDuration(%s) = %s, %v", tt.prom, back, ok)
		}
	}
	for _, in := range []string{"5m0s", "1h0m0s", "2w", "1y"} {
		if _, ok := parseDuration(in); !ok {
			t.Errorf("parseDuration(%q) failed", in)
		}
	}
	for _, in := range []string{"", "5 minutes", "m5", "-"} {
		if _, ok := parseDuration(in); ok {
			t.Errorf("parseDuration(%q) accepted", in)
		}
	}
	if !sameDuration("5m", "5m0s") || sameDuration("5m", "6m") || sameDuration("", "5m") {
		t.Error("sameDuration")
	}
}

func TestRuleTitle(t *testing.T) {
	long := strings.Repeat("r", 180)
	suffixes := []string{": host failing checks", ": check failing region-wide",
		": host failing checks [team=storage]", ": check failing region-wide [team=storage]"}
	tests := []struct {
		name   string
		groups []string
	}{
		{"short names are kept whole", []string{"eu-west-1"}},
		{"long names sharing a prefix", []string{long, long + "a", long + "b"}},
		{"multi-byte names", []string{strings.Repeat("é", 95), strings.Repeat("é", 94) + "e"}},
		{"at the limit", []string{strings.Repeat("x", maxTitleLength-len(suffixes[0]))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[string]string{}
			for _, g := range tt.groups {
				for _, suffix := range suffixes {
					got := ruleTitle(g, suffix)
					if len(got) > maxTitleLength || !utf8.ValidString(got) {
						t.Errorf("ruleTitle(%d bytes, %q) = %d bytes, valid UTF-8 %t", len(g), suffix, len(got), utf8.ValidString(got))
					}
					if !strings.HasSuffix(got, suffix) {
						t.Errorf("ruleTitle(%d bytes, %q) = %q lost its suffix", len(g), suffix, got)
					}
					if len(g)+len(suffix) <= maxTitleLength && got != g+suffix {
						t.Errorf("ruleTitle(%q, %q) = %q, want them joined", g, suffix, got)
					}
					if other, dup := seen[got]; dup {
						t.Errorf("%q and %q give one title %q", other, g+suffix, got)
					}
					seen[got] = g + suffix
				}
			}
		})
	}
	// A suffix too long to leave room for the name still gives a valid,
	// distinct title.
	huge := " [" + strings.Repeat("team=x,", 40) + "]"
	a, b := ruleTitle("eu", huge), ruleTitle("ap", huge)
	if a == b || len(a) > maxTitleLength || len(b) > maxTitleLength {
		t.Errorf("titles with a huge suffix: %q, %q", a, b)
	}
}

// A region whose name leaves little room in a title is provisioned, and its
// rules keep distinct titles (Grafana up to 11.x and the test Grafana refuse
// duplicate titles in a folder).
func TestLongRegionIsProvisioned(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	long := strings.Repeat("region-", 26) // 182 bytes
	rs := regions(long, long+"x")
	p := f.apply(t, rs)
	if len(p.Changes) == 0 {
		t.Fatal("nothing created")
	}
	f.assertNoWrites(t, rs)
}
