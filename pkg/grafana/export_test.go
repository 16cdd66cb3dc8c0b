package grafana

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// exampleRegions are the regions the grafana/ examples are exported with.
var exampleRegions = []Region{{Name: "eu-west-1"}, {Name: "us-east-1"}, {Name: "ap-southeast-2"}}

func exportString(t *testing.T, cfg *config.Config, rs []Region) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Export(cfg, rs, t0, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestExportGolden(t *testing.T) {
	env := map[string]string{"HR_PD_DEFAULT": keyDefault, "HR_PD_STORAGE": keyStorage}
	tests := []struct {
		name, grafana, file string
	}{
		{"notification_settings", "", "testdata/export_notification_settings.yaml"},
		{"policy", "routing: policy", "testdata/export_policy.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadConfig(t, "http://grafana.example.com:3000", tt.grafana, "", env)
			out := exportString(t, cfg, regions("eu-west-1", "us-east-1"))
			golden(t, tt.file, out)
			assertNoSecret(t, "export", out)
			for _, ref := range []string{"${HR_PD_DEFAULT}", "${HR_PD_STORAGE}"} {
				if !strings.Contains(out, ref) {
					t.Errorf("export lacks the reference %s", ref)
				}
			}

			// The document parses and holds what Apply would create.
			var doc exportDoc
			if err := yaml.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatal(err)
			}
			b, _ := newBuilder(cfg)
			d := b.build(regions("eu-west-1", "us-east-1"), t0)
			if len(doc.Groups) != len(d.groups) || len(doc.ContactPoints) != len(d.contactPoints) {
				t.Fatalf("export has %d groups and %d contact points, apply would make %d and %d",
					len(doc.Groups), len(doc.ContactPoints), len(d.groups), len(d.contactPoints))
			}
			for i, g := range d.groups {
				eg := doc.Groups[i]
				if eg.Name != g.name || eg.Folder != cfg.Grafana.FolderTitle || eg.Interval != "1m" || len(eg.Rules) != len(g.rules) {
					t.Errorf("group %d: %s in %s every %s with %d rules", i, eg.Name, eg.Folder, eg.Interval, len(eg.Rules))
					continue
				}
				for j, r := range g.rules {
					er := eg.Rules[j]
					if er.UID != r.UID || er.Title != s(r.Title) || er.For != promDuration(dur(r.For)) ||
						er.Data[0].Model["expr"] != r.Data[0].Model.(map[string]any)["expr"] || er.Data[0].RelativeTimeRange.From != 600 {
						t.Errorf("rule %s exported as %+v", r.UID, er)
					}
				}
			}
			if (len(doc.Policies) == 1) != (tt.grafana == "routing: policy") {
				t.Errorf("%d policies exported", len(doc.Policies))
			}
		})
	}
}

// TestExamples keeps grafana/'s alerting provisioning examples in step with
// Export and testdata/config/example.yaml. Regenerate them with
//
//	go test ./pkg/grafana -run TestExamples -update
func TestExamples(t *testing.T) {
	cfg, err := config.Load("../../testdata/config/example.yaml", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "../../grafana/provisioning/alerting/healthrouter.yaml", exportString(t, cfg, exampleRegions))

	policy := *cfg
	g := *cfg.Grafana
	g.Routing = config.RoutingPolicy
	policy.Grafana = &g
	golden(t, "../../grafana/examples/alerting-policy-routing.yaml", exportString(t, &policy, exampleRegions))
}

func TestExportRejectsUnusableConfig(t *testing.T) {
	cfg := loadConfig(t, "http://grafana.example.com:3000", "", "", map[string]string{})
	cfg.Grafana = nil
	if err := Export(cfg, nil, t0, &bytes.Buffer{}); err == nil {
		t.Fatal("Export accepted a config without grafana")
	}
}

// Export leaves out the regions pruning would delete, judged on the
// clock it is given, as Apply does.
func TestExportLeavesOutPrunedRegions(t *testing.T) {
	cfg := loadConfig(t, "http://grafana.example.com:3000", "prune: true\nprune_after: 24h", "", map[string]string{})
	rs := []Region{{Name: "eu-west-1", LastSeen: t0.Add(-time.Hour)}, {Name: "us-east-1", LastSeen: t0.Add(-48 * time.Hour)}}
	for _, tt := range []struct {
		name string
		now  time.Time
		want []string
	}{
		{"both seen within prune_after", t0.Add(-24 * time.Hour), []string{"eu-west-1", "us-east-1"}},
		{"one silent past prune_after", t0, []string{"eu-west-1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Export(cfg, rs, tt.now, &buf); err != nil {
				t.Fatal(err)
			}
			var doc exportDoc
			if err := yaml.Unmarshal(buf.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, g := range doc.Groups {
				for _, r := range tt.want {
					if strings.Contains(g.Name, r) {
						got = append(got, r)
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("exported region groups %v, want %v", got, tt.want)
			}
		})
	}
}

// TestExportMatchesApply checks that Export and Apply describe the same
// objects: applying, then comparing what Grafana holds with the export.
func TestExportMatchesApply(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	rs := regions("eu-west-1")
	f.apply(t, rs)
	var doc exportDoc
	if err := yaml.Unmarshal([]byte(exportString(t, f.cfg, rs)), &doc); err != nil {
		t.Fatal(err)
	}
	for _, g := range doc.Groups {
		for _, er := range g.Rules {
			held, ok := f.srv.Rule(er.UID)
			if !ok {
				t.Errorf("exported rule %s was not applied", er.UID)
				continue
			}
			if er.Title != s(held.Title) || er.NoDataState != s(held.NoDataState) || er.ExecErrState != s(held.ExecErrState) ||
				s(held.NotificationSettings.Receiver) != er.NotificationSettings.Receiver {
				t.Errorf("rule %s: export %+v, Grafana %+v", er.UID, er, held)
			}
		}
	}
	for _, cp := range doc.ContactPoints {
		held, _, ok := f.srv.ContactPoint(cp.Receivers[0].UID)
		if !ok || held.Name != cp.Name {
			t.Errorf("contact point %s: exported, not applied", cp.Name)
			continue
		}
		hs := held.Settings.(map[string]any)
		for k, v := range cp.Receivers[0].Settings {
			if k == "integrationKey" {
				continue
			}
			if hs[k] == nil {
				t.Errorf("%s: setting %s exported but not applied", cp.Name, k)
			}
			_ = v
		}
	}
	if _, err := f.r.Plan(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}
