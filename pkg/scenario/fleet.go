package scenario

import (
	"errors"
	"fmt"
	"time"
)

// Fleet is the simulated fleet: in every region, web hosts numbered across
// the regions (web-001 ... web-080 for 4 regions of 20) and a few registry
// hosts that also run the registry check, all reporting every interval.
type Fleet struct {
	Domain  string   `json:"domain"`
	Regions []string `json:"regions"`
	// WebHosts and RegistryHosts are per region.
	WebHosts      int `json:"web_hosts"`
	RegistryHosts int `json:"registry_hosts"`
	// Checks run on every host; registry hosts add RegistryCheck.
	Checks          []string `json:"checks"`
	IntervalSeconds int      `json:"interval_seconds"`
	// Extra are hosts beyond that layout, such as one newly provisioned.
	Extra []Host `json:"extra_hosts,omitempty"`
}

// RegistryCheck is the check only registry hosts run.
const RegistryCheck = "registry"

// Host is one simulated host. Name is the short name; the FQDN adds the
// region and the fleet's domain.
type Host struct {
	Region string   `json:"region"`
	Name   string   `json:"name"`
	Checks []string `json:"checks"`
}

// DefaultFleet is the fleet every scenario runs on: 4 regions of 24 hosts,
// 11 checks each (12 on the 4 registry hosts per region), every 30 s.
func DefaultFleet() Fleet {
	return Fleet{
		Domain:        "example.com",
		Regions:       []string{"us-east", "ap-south", "eu-west", "eu-central"},
		WebHosts:      20,
		RegistryHosts: 4,
		Checks: []string{"cpu_steal", "load", "memory", "disk", "lvm", "raid",
			"connectivity", "dns", "ntp", "kernel", "sshd"},
		IntervalSeconds: 30,
	}
}

func (f *Fleet) interval() time.Duration { return time.Duration(f.IntervalSeconds) * time.Second }

// FQDN is the host's full name, e.g. web-042.eu-west.example.com.
func (f *Fleet) FQDN(h *Host) string { return h.Name + "." + h.Region + "." + f.Domain }

// Hosts lists every host in a fixed order: by region, web hosts, then
// registry hosts, then the region's extra hosts.
func (f *Fleet) Hosts() []Host {
	hosts := make([]Host, 0, len(f.Regions)*(f.WebHosts+f.RegistryHosts)+len(f.Extra))
	registryChecks := append(append(make([]string, 0, len(f.Checks)+1), f.Checks...), RegistryCheck)
	for ri, region := range f.Regions {
		for i := range f.WebHosts {
			hosts = append(hosts, Host{Region: region, Name: fmt.Sprintf("web-%03d", ri*f.WebHosts+i+1), Checks: f.Checks})
		}
		for i := range f.RegistryHosts {
			hosts = append(hosts, Host{Region: region, Name: fmt.Sprintf("registry-%02d", i+1), Checks: registryChecks})
		}
		for _, h := range f.Extra {
			if h.Region == region {
				hosts = append(hosts, h)
			}
		}
	}
	return hosts
}

func (f *Fleet) validate() error {
	var errs []error
	if f.Domain == "" || len(f.Regions) == 0 || len(f.Checks) == 0 {
		errs = append(errs, errors.New("fleet: want a domain, regions and checks"))
	}
	if f.WebHosts < 0 || f.RegistryHosts < 0 || f.WebHosts+f.RegistryHosts == 0 {
		errs = append(errs, errors.New("fleet: want some hosts per region"))
	}
	if f.IntervalSeconds < 5 {
		// Arrivals keep half a second from each end of the interval.
		errs = append(errs, fmt.Errorf("fleet: interval %ds: want at least 5s", f.IntervalSeconds))
	}
	known := map[string]bool{}
	for _, r := range f.Regions {
		known[r] = true
	}
	seen := map[string]bool{}
	for _, h := range f.Hosts() {
		if seen[h.Region+"/"+h.Name] {
			errs = append(errs, fmt.Errorf("fleet: host %s in %s twice", h.Name, h.Region))
		}
		seen[h.Region+"/"+h.Name] = true
	}
	for _, h := range f.Extra {
		if !known[h.Region] || h.Name == "" || len(h.Checks) == 0 {
			errs = append(errs, fmt.Errorf("fleet: extra host %q: want a name, checks and one of the regions", h.Name))
		}
	}
	return errors.Join(errs...)
}
