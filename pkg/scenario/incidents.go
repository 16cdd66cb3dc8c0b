package scenario

import (
	"time"

	"github.com/healthrouter/healthrouter/pkg/engine"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// Every incident runs 30 rounds (15 minutes): 6 quiet rounds for the
// fleet to report in, the incident from round 6 to round 22 (8 minutes:
// long enough to confirm, roll up, or go stale), then recovery.
const (
	rounds        = 30
	incidentStart = 6
	incidentEnd   = 22
)

var start = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// All returns the eleven incidents of DESIGN §9, in order. Each call
// returns fresh values.
func All() []*Scenario {
	return []*Scenario{
		cpuSteal(), storageStuck(), routingLoop(), registryErrors(), dnsWarning(), memoryShort(),
		flapping(), drainedHost(), hostSilent(), regionSilent(), restartMidIncident(),
	}
}

func newScenario(n int, name, incident, story string) *Scenario {
	return &Scenario{
		Number: n, Name: name, Incident: incident, Story: story,
		Fleet: DefaultFleet(), Start: start, Rounds: rounds,
		Expect: Expectation{Alerts: []ExpectedAlert{}, Suppressed: map[string]int{}},
	}
}

func fqdn(name, region string) string { return name + "." + region + ".example.com" }

func hostAlert(region, name, check string, sev health.Severity) ExpectedAlert {
	return ExpectedAlert{Level: health.LevelHost, Region: region, Host: fqdn(name, region), Check: check, Severity: sev}
}

func regionAlert(region, check string, sev health.Severity) ExpectedAlert {
	return ExpectedAlert{Level: health.LevelRegion, Region: region, Check: check, Severity: sev}
}

func cpuSteal() *Scenario {
	s := newScenario(1, "cpu-steal",
		"CPU steal on a subset of hosts in one region after a noisy neighbour [one host alert per affected host while under the region threshold]",
		"cpu_steal goes critical on 5 of the 24 hosts of us-east (below the 30% region threshold, 8 hosts); "+
			"load follows at warning on 3 of them two rounds later, which must not page them again.")
	s.Effects = []Effect{
		{Region: "us-east", Host: "web-00[37]", Check: "cpu_steal", From: incidentStart, To: incidentEnd, Status: health.Critical},
		{Region: "us-east", Host: "web-01[159]", Check: "cpu_steal", From: incidentStart, To: incidentEnd, Status: health.Critical},
		{Region: "us-east", Host: "web-00[37]", Check: "load", From: incidentStart + 2, To: incidentEnd, Status: health.Warning},
		{Region: "us-east", Host: "web-011", Check: "load", From: incidentStart + 2, To: incidentEnd, Status: health.Warning},
	}
	for _, h := range []string{"web-003", "web-007", "web-011", "web-015", "web-019"} {
		s.Expect.Alerts = append(s.Expect.Alerts, hostAlert("us-east", h, "cpu_steal", health.SeverityCritical))
	}
	s.Expect.Pages = 5
	s.Expect.DirectPages = 5 // each cpu_steal goes critical once; warnings do not page
	return s
}

// storageEffects: web-081 is provisioned into eu-west at round 6 with LVM
// and RAID broken until round 22.
func storageEffects(s *Scenario) {
	s.Fleet.Extra = []Host{{Region: "eu-west", Name: "web-081", Checks: s.Fleet.Checks}}
	s.Effects = []Effect{
		{Region: "eu-west", Host: "web-081", From: 0, To: incidentStart, Silent: true},
		{Region: "eu-west", Host: "web-081", Check: "lvm", From: incidentStart, To: incidentEnd, Status: health.Critical},
		{Region: "eu-west", Host: "web-081", Check: "raid", From: incidentStart, To: incidentEnd, Status: health.Critical},
	}
	// Both checks confirm together; the alert is the host's, attributed to
	// the first check by name.
	s.Expect.Alerts = []ExpectedAlert{hostAlert("eu-west", "web-081", "lvm", health.SeverityCritical)}
	s.Expect.Pages = 1
	s.Expect.DirectPages = 2 // lvm and raid, one page each
}

func storageStuck() *Scenario {
	s := newScenario(2, "storage-stuck",
		"One newly provisioned host's storage stuck (LVM and RAID checks critical) [exactly 1 host alert]",
		"web-081 joins eu-west at round 6 with lvm and raid critical for 8 minutes: one host alert for both checks.")
	storageEffects(s)
	return s
}

func restartMidIncident() *Scenario {
	s := newScenario(11, "restart-mid-incident",
		"healthrouter restarted in the middle of incident 2 [the same alert continues; nothing lost]",
		"Incident 2 with healthrouter crashing and restarting from its persisted state 4 minutes into it: "+
			"the host alert neither resolves nor fires again.")
	storageEffects(s)
	s.Restarts = []time.Time{s.RoundTime(14).Add(15 * time.Second)}
	return s
}

func routingLoop() *Scenario {
	s := newScenario(3, "routing-loop",
		"Upstream routing loop between two regions: connectivity checks fail on every host of one region [1 region alert, 0 host alerts]",
		"connectivity goes critical on all 24 hosts of eu-central at once for 8 minutes.")
	s.Effects = []Effect{
		{Region: "eu-central", Host: "*", Check: "connectivity", From: incidentStart, To: incidentEnd, Status: health.Critical},
	}
	s.Expect.Alerts = []ExpectedAlert{regionAlert("eu-central", "connectivity", health.SeverityCritical)}
	s.Expect.Pages = 1
	s.Expect.DirectPages = 24
	s.Expect.Suppressed[health.SuppressedByRegion] = 24
	return s
}

func registryErrors() *Scenario {
	s := newScenario(4, "registry-errors",
		"Registry service errors in several regions, on the few hosts that run it [1 region alert per region]",
		"registry goes critical on all 4 registry hosts of us-east and eu-west and on 3 of 4 in ap-south "+
			"(3 hosts: the region minimum); the web hosts do not run it and do not count.")
	s.Effects = []Effect{
		{Region: "us-east", Host: "*", Check: RegistryCheck, From: incidentStart, To: incidentEnd, Status: health.Critical},
		{Region: "eu-west", Host: "*", Check: RegistryCheck, From: incidentStart, To: incidentEnd, Status: health.Critical},
		{Region: "ap-south", Host: "registry-0[123]", Check: RegistryCheck, From: incidentStart, To: incidentEnd, Status: health.Critical},
	}
	s.Expect.Alerts = []ExpectedAlert{
		regionAlert("ap-south", RegistryCheck, health.SeverityCritical),
		regionAlert("eu-west", RegistryCheck, health.SeverityCritical),
		regionAlert("us-east", RegistryCheck, health.SeverityCritical),
	}
	s.Expect.Pages = 3
	s.Expect.DirectPages = 11
	s.Expect.Suppressed[health.SuppressedByRegion] = 11
	return s
}

func dnsWarning() *Scenario {
	s := newScenario(5, "dns-warning",
		"Internal DNS errors, warning only [no critical page]",
		"The dns check fails (status critical) with the severity its owners gave it, warning: "+
			"on all 24 hosts of eu-west and on 2 hosts of us-east. Check-to-pager routing pages on the status.")
	s.Effects = []Effect{
		{Region: "eu-west", Host: "*", Check: "dns", From: incidentStart, To: incidentEnd,
			Status: health.Critical, Severity: health.SeverityWarning},
		{Region: "us-east", Host: "web-01[26]", Check: "dns", From: incidentStart, To: incidentEnd,
			Status: health.Critical, Severity: health.SeverityWarning},
	}
	s.Expect.Alerts = []ExpectedAlert{
		hostAlert("us-east", "web-012", "dns", health.SeverityWarning),
		hostAlert("us-east", "web-016", "dns", health.SeverityWarning),
		regionAlert("eu-west", "dns", health.SeverityWarning),
	}
	s.Expect.Pages = 0
	s.Expect.DirectPages = 26
	s.Expect.Suppressed[health.SuppressedByRegion] = 24
	return s
}

func memoryShort() *Scenario {
	s := newScenario(6, "memory-short",
		"Memory capacity short in one region [a warning, not a page]",
		"memory goes to warning on 9 of the 24 hosts of ap-south (37%, over the region threshold).")
	s.Effects = []Effect{
		{Region: "ap-south", Host: "web-02[1-9]", Check: "memory", From: incidentStart, To: incidentEnd, Status: health.Warning},
	}
	s.Expect.Alerts = []ExpectedAlert{regionAlert("ap-south", "memory", health.SeverityWarning)}
	s.Expect.Pages = 0
	s.Expect.DirectPages = 0
	s.Expect.Suppressed[health.SuppressedByRegion] = 9
	return s
}

func flapping() *Scenario {
	s := newScenario(7, "flapping",
		"A check flapping every other result [no page while flapping; visible]",
		"ntp on web-005 in us-east alternates critical and passing every round for 8 minutes and is still "+
			"flapping (suppressed, visible) when the scenario ends.")
	s.Effects = []Effect{
		{Region: "us-east", Host: "web-005", Check: "ntp", From: incidentStart, To: incidentEnd, Status: health.Critical, Flap: true},
	}
	s.Expect.Pages = 0
	s.Expect.DirectPages = (incidentEnd - incidentStart) / 2 // every other round goes critical again
	s.Expect.Suppressed[health.SuppressedByFlapping] = 1
	return s
}

func drainedHost() *Scenario {
	s := newScenario(8, "drained-host",
		"A drained host in maintenance failing everything [no page]",
		"web-065 in eu-central is put in maintenance for its drain, then every one of its 11 checks fails "+
			"for 7 minutes; the window ends after it is back.")
	s.Effects = []Effect{
		{Region: "eu-central", Host: "web-065", From: incidentStart, To: incidentEnd - 2, Status: health.Critical},
	}
	w := health.Window{
		Region:  "eu-central",
		Host:    fqdn("web-065", "eu-central"),
		Until:   s.RoundTime(28),
		Reason:  "drained for kernel upgrade",
		Created: s.RoundTime(incidentStart - 1),
	}
	w.ID = engine.WindowID(w)
	s.Windows = []health.Window{w}
	s.Expect.Pages = 0
	s.Expect.DirectPages = 11
	s.Expect.Suppressed[health.SuppressedByMaintenance] = 11
	return s
}

func hostSilent() *Scenario {
	s := newScenario(9, "host-silent",
		"One host stops reporting [1 host alert, not_reporting]",
		"web-030 in ap-south sends nothing for 10 minutes: stale after 5, then one not_reporting alert until it is back.")
	s.Effects = []Effect{
		{Region: "ap-south", Host: "web-030", From: incidentStart, To: incidentEnd + 4, Silent: true},
	}
	s.Expect.Alerts = []ExpectedAlert{hostAlert("ap-south", "web-030", health.NotReporting, health.SeverityCritical)}
	s.Expect.Pages = 1
	s.Expect.DirectPages = 0 // nothing arrives, so nothing pages directly
	return s
}

func regionSilent() *Scenario {
	s := newScenario(10, "region-silent",
		"A whole region stops reporting [1 region alert, 0 host alerts]",
		"All 24 hosts of eu-west send nothing for 10 minutes (a dead forwarder): one region not_reporting alert.")
	s.Effects = []Effect{
		{Region: "eu-west", Host: "*", From: incidentStart, To: incidentEnd + 4, Silent: true},
	}
	s.Expect.Alerts = []ExpectedAlert{regionAlert("eu-west", health.NotReporting, health.SeverityCritical)}
	s.Expect.Pages = 1
	s.Expect.DirectPages = 0
	s.Expect.Suppressed[health.SuppressedByRegion] = 24
	return s
}
