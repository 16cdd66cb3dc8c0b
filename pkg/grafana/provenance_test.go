package grafana

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-openapi-client-go/client/provisioning"
	"github.com/grafana/grafana-openapi-client-go/models"
	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/grafana/grafanatest"
)

// Objects first provisioned from files (such as those healthrouter export
// writes) carry provenance "file", which Grafana's API does not let anyone
// change. These tests check that healthrouter leaves them alone, says why,
// and keeps managing everything else.

// planText plans against f's Grafana and returns the rendered plan.
func planText(t *testing.T, f *fixture, rs []Region) (*Plan, string) {
	t.Helper()
	p, err := f.r.Plan(context.Background(), rs)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return p, p.String()
}

func changeFor(p *Plan, kind, name string) *Change {
	for i, c := range p.Changes {
		if c.Kind == kind && c.Name == name {
			return &p.Changes[i]
		}
	}
	return nil
}

func assertContains(t *testing.T, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("plan lacks %q:\n%s", w, text)
		}
	}
}

func TestFileProvisionedContactPointIsReadOnly(t *testing.T) {
	for _, grafanaExtra := range []string{"", "disable_provenance: true"} {
		t.Run("config "+grafanaExtra, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{grafana: grafanaExtra})
			rs := regions("eu-west-1")
			f.apply(t, rs)
			f.srv.SetContactPointProvenance("hr-pd-default", grafanatest.ProvenanceFile)

			// As it is: nothing to write, and the plan says it is read-only.
			p, text := planText(t, f, rs)
			if !p.Empty() {
				t.Errorf("plan for a file-provisioned contact point as desired:\n%s", text)
			}
			assertContains(t, text, `contact point healthrouter-default has provenance "file"`, "does not write it",
				"remove it from the provisioning files and delete it in Grafana")
			if strings.Contains(text, "differs") {
				t.Errorf("note claims a difference:\n%s", text)
			}
			f.assertNoWrites(t, rs)

			// A key rotation cannot reach it: no write (Grafana would answer
			// 500 every time), and the note says what is lost.
			env := testEnv(f.srv)
			env["HR_PD_DEFAULT"] = "00000000000000002222222222222222"
			f.cfg = loadConfig(t, f.srv.URL, grafanaExtra, "", env)
			f.r = f.newReconciler(t, fixtureOpts{})
			p, text = planText(t, f, rs)
			if c := changeFor(p, kindContactPoint, "healthrouter-default"); c != nil {
				t.Errorf("planned a write Grafana refuses: %+v", c)
			}
			assertContains(t, text, "routing key from $HR_PD_DEFAULT differs from the one Grafana holds", "such changes do not reach it")
			f.assertNoWrites(t, rs)
			if _, key, _ := f.srv.ContactPoint("hr-pd-default"); key != keyDefault {
				t.Error("the file-provisioned key was replaced")
			}
			if st := f.r.Status(); !st.Healthy {
				t.Errorf("status after reconciling around a read-only contact point: %+v", st)
			}
		})
	}
}

// TestFileProvisionedContactPointWithoutFingerprint: the files carry the
// key without healthrouter's fingerprint, so the key cannot be compared.
func TestFileProvisionedContactPointWithoutFingerprint(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	rs := regions("eu-west-1")
	f.apply(t, rs)
	cp, _, _ := f.srv.ContactPoint("hr-pd-default")
	settings := cp.Settings.(map[string]any)
	delete(settings, keyFingerprintSetting)
	if _, err := f.srv.Client().Provisioning.PutContactpoint(provisioning.NewPutContactpointParams().WithUID(cp.UID).WithBody(&cp)); err != nil {
		t.Fatal(err)
	}
	f.srv.SetContactPointProvenance("hr-pd-default", grafanatest.ProvenanceFile)
	p, text := planText(t, f, rs)
	if !p.Empty() {
		t.Errorf("plan:\n%s", text)
	}
	assertContains(t, text, "its routing key cannot be checked against $HR_PD_DEFAULT")
	if strings.Contains(text, "differs") {
		t.Errorf("a key without fingerprint reported as different:\n%s", text)
	}
}

// TestStaleFileProvisionedContactPointIsKept: a contact point that looks
// like healthrouter's but is no longer configured is deleted, unless it
// comes from Grafana's provisioning files, which would bring it back.
func TestStaleFileProvisionedContactPointIsKept(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	rs := regions("eu-west-1")
	f.apply(t, rs)
	old := &models.EmbeddedContactPoint{UID: UIDPrefix + "pd-old", Name: ContactPointPrefix + "old", Type: ptr("pagerduty"),
		Settings: map[string]any{"integrationKey": keyStorage}}
	if _, err := f.srv.Client().Provisioning.PostContactpoints(provisioning.NewPostContactpointsParams().WithBody(old)); err != nil {
		t.Fatal(err)
	}
	p, _ := planText(t, f, rs)
	if c := changeFor(p, kindContactPoint, old.Name); c == nil || c.Action != actionDelete {
		t.Fatalf("a stale contact point with provenance api is not deleted:\n%s", p)
	}
	f.srv.SetContactPointProvenance(old.UID, grafanatest.ProvenanceFile)
	p, text := planText(t, f, rs)
	if !p.Empty() {
		t.Errorf("plan for a stale file-provisioned contact point:\n%s", text)
	}
	assertContains(t, text, `contact point healthrouter-old is no longer configured, but it has provenance "file"`)
	f.assertNoWrites(t, rs)
	if _, _, ok := f.srv.ContactPoint(old.UID); !ok {
		t.Error("deleted")
	}
}

// postForeignRule adds someone's rule to a group of healthrouter's folder,
// made in Grafana's UI (no provenance) unless withProvenance.
func postForeignRule(t *testing.T, f *fixture, uid, group string, withProvenance bool) {
	t.Helper()
	r, _ := f.srv.Rule("hr-host-eu-west-1")
	r.UID, r.Title, r.RuleGroup, r.ID = uid, ptr("someone's rule "+uid), ptr(group), 0
	r.Labels = map[string]string{"team": "x"}
	r.NotificationSettings = nil
	p := provisioning.NewPostAlertRuleParams().WithBody(r)
	if !withProvenance {
		p = p.WithXDisableProvenance(ptr("true"))
	}
	if _, err := f.srv.Client().Provisioning.PostAlertRule(p); err != nil {
		t.Fatal(err)
	}
}

func TestGroupWriteStampsSomeoneElsesRules(t *testing.T) {
	tests := []struct {
		name           string
		grafana        string
		foreignHasProv bool
		wantNote       string
		wantProv       string
	}{
		{"a UI rule gets api", "", false,
			`changes the provenance of someone else's rules other "someone's rule other" from "" to "api"`, "api"},
		{"an api rule loses it", "disable_provenance: true", true,
			`changes the provenance of someone else's rules other "someone's rule other" from "api" to ""`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{grafana: tt.grafana})
			rs := regions("eu-west-1")
			f.apply(t, rs)
			postForeignRule(t, f, "other", "eu-west-1", tt.foreignHasProv)
			f.assertNoWrites(t, rs)

			f.cfg = loadConfig(t, f.srv.URL, tt.grafana+"\ngroup_wait: 45s", "", testEnv(f.srv))
			f.r = f.newReconciler(t, fixtureOpts{})
			p := f.apply(t, rs)
			if changeFor(p, kindRuleGroup, "eu-west-1") == nil {
				t.Fatalf("group not written:\n%s", p)
			}
			assertContains(t, p.String(), tt.wantNote)
			if got := strings.Contains(p.String(), "no longer lets anyone edit them"); got != (tt.wantProv == "api") {
				t.Errorf("UI lock-out mentioned: %v, want %v:\n%s", got, tt.wantProv == "api", p)
			}
			if r, _ := f.srv.Rule("other"); string(r.Provenance) != tt.wantProv {
				t.Errorf("someone's rule has provenance %q, want %q", r.Provenance, tt.wantProv)
			}
			f.assertNoWrites(t, rs)
		})
	}
}

func TestFileProvisionedRuleBlocksItsGroup(t *testing.T) {
	t.Run("someone else's rule", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		rs := regions("eu-west-1", "us-east-1")
		f.apply(t, rs)
		postForeignRule(t, f, "other", "eu-west-1", true)
		f.srv.SetRuleProvenance("other", grafanatest.ProvenanceFile)

		// Nothing to write yet, but the plan warns.
		_, text := planText(t, f, rs)
		assertContains(t, text, "rule group eu-west-1 cannot be written",
			`someone else's rules other "someone's rule other" (provenance "file")`, "move them to a group of their own")
		f.assertNoWrites(t, rs)

		// A change for every region: the blocked group is left out, the
		// others are written, and the reconcile succeeds.
		f.cfg = loadConfig(t, f.srv.URL, "group_wait: 45s", "", testEnv(f.srv))
		f.r = f.newReconciler(t, fixtureOpts{})
		f.srv.ResetLog()
		p := f.apply(t, rs)
		if changeFor(p, kindRuleGroup, "eu-west-1") != nil || changeFor(p, kindRuleGroup, "us-east-1") == nil {
			t.Errorf("changes:\n%s", p)
		}
		for _, req := range f.srv.Requests() {
			if req.Status == http.StatusConflict {
				t.Errorf("sent a write Grafana refuses: %+v", req)
			}
		}
		assertContains(t, p.String(), "rule group eu-west-1 cannot be written")
		f.assertNoWrites(t, rs)
		// A region whose rules cannot be written is worth a warning in
		// serve's log, once rather than every reconcile.
		warned := 0
		for _, e := range f.logs.FilterMessage("grafana reconcile note").All() {
			if e.Level == zap.WarnLevel && strings.Contains(e.ContextMap()["note"].(string), "rule group eu-west-1 cannot be written") {
				warned++
			}
		}
		if warned != 1 {
			t.Errorf("the blocked group was warned of %d times over two reconciles, want once", warned)
		}
	})

	t.Run("healthrouter's own rule", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		rs := regions("eu-west-1")
		f.apply(t, rs)
		f.srv.SetRuleProvenance("hr-host-eu-west-1", grafanatest.ProvenanceFile)
		_, text := planText(t, f, rs)
		assertContains(t, text, "rule group eu-west-1 cannot be written", `healthrouter's rules hr-host-eu-west-1`,
			"remove them from those files and delete them in Grafana")
		f.assertNoWrites(t, rs)
	})

	t.Run("a rule to move back sits beside one", func(t *testing.T) {
		// Someone moved healthrouter's host rule into their group, beside a
		// file-provisioned rule: moving it back rewrites that group too,
		// which Grafana refuses.
		f := newFixture(t, fixtureOpts{})
		rs := regions("eu-west-1")
		f.apply(t, rs)
		host, _ := f.srv.Rule("hr-host-eu-west-1")
		postForeignRule(t, f, "other", "eu-west-1", true)
		other, _ := f.srv.Rule("other")
		if _, err := f.srv.Client().Provisioning.PutAlertRuleGroup(provisioning.NewPutAlertRuleGroupParams().
			WithFolderUID(folder).WithGroup("theirs").
			WithBody(&models.AlertRuleGroup{Interval: 60, Rules: []*models.ProvisionedAlertRule{host, other}})); err != nil {
			t.Fatal(err)
		}
		f.srv.SetRuleProvenance("other", grafanatest.ProvenanceFile)
		f.srv.ResetLog()
		p := f.apply(t, rs)
		if changeFor(p, kindRuleGroup, "eu-west-1") != nil {
			t.Errorf("planned a write Grafana refuses:\n%s", p)
		}
		assertContains(t, p.String(), "rule group eu-west-1 cannot be written", `other "someone's rule other" (provenance "file")`)
		if f.srv.CountWrites(http.MethodPut, "/v1/provisioning/folder/") != 0 {
			t.Errorf("group writes: %v", f.srv.Requests())
		}
	})
}

func TestPruneAroundProvenance(t *testing.T) {
	setup := func(t *testing.T) (*fixture, []Region) {
		f := newFixture(t, fixtureOpts{grafana: "prune: true\nprune_after: 24h"})
		f.apply(t, regions("eu-west-1", "ap"))
		postForeignRule(t, f, "other", "ap", false)
		return f, []Region{{Name: "eu-west-1", LastSeen: t0}, {Name: "ap", LastSeen: t0.Add(-48 * time.Hour)}}
	}
	t.Run("the rewrite stamps someone else's rule", func(t *testing.T) {
		f, rs := setup(t)
		p := f.apply(t, rs)
		assertContains(t, p.String(), "writing rule group ap changes the provenance of someone else's rules other")
		if _, uids, _ := f.srv.Group(folder, "ap"); !reflect.DeepEqual(uids, []string{"other"}) {
			t.Errorf("group ap holds %v", uids)
		}
		if r, _ := f.srv.Rule("other"); r.Provenance != "api" {
			t.Errorf("someone's rule provenance %q after the rewrite, want api", r.Provenance)
		}
	})
	t.Run("a file-provisioned rule keeps the group", func(t *testing.T) {
		f, rs := setup(t)
		f.srv.SetRuleProvenance("other", grafanatest.ProvenanceFile)
		_, before, _ := f.srv.Group(folder, "ap")
		p := f.apply(t, rs)
		if changeFor(p, kindRuleGroup, "ap") != nil {
			t.Errorf("planned a write Grafana refuses:\n%s", p)
		}
		assertContains(t, p.String(), "rule group ap cannot be written")
		if _, uids, _ := f.srv.Group(folder, "ap"); !reflect.DeepEqual(uids, before) {
			t.Errorf("group ap holds %v, want it untouched (%v)", uids, before)
		}
	})
	t.Run("a file-provisioned leftover keeps the group", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{grafana: "prune: true\nprune_after: 24h"})
		f.apply(t, regions("eu-west-1", "ap"))
		f.srv.SetRuleProvenance("hr-host-ap", grafanatest.ProvenanceFile)
		p := f.apply(t, []Region{{Name: "eu-west-1", LastSeen: t0}, {Name: "ap", LastSeen: t0.Add(-48 * time.Hour)}})
		if changeFor(p, kindRuleGroup, "ap") != nil {
			t.Errorf("planned a delete Grafana refuses:\n%s", p)
		}
		assertContains(t, p.String(), "rule group ap cannot be written", "healthrouter's rules hr-host-ap")
	})
}

// TestExpressionModelDefaultsConverge: Grafana fills intervalMs and
// maxDataPoints into every query model, expressions included; a reconcile
// over what it stores still writes nothing.
func TestExpressionModelDefaultsConverge(t *testing.T) {
	for _, mode := range []string{"notification_settings", "policy"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{grafana: "routing: " + mode})
			rs := regions("eu-west-1")
			f.apply(t, rs)
			r, _ := f.srv.Rule("hr-host-eu-west-1")
			expressions := 0
			for _, q := range r.Data {
				if q.DatasourceUID != "__expr__" {
					continue
				}
				expressions++
				if m := q.Model.(map[string]any); m["intervalMs"] == nil || m["maxDataPoints"] == nil {
					t.Errorf("expression %s stored without Grafana's defaults: %v", q.RefID, m)
				}
			}
			if expressions == 0 {
				t.Fatal("the host rule has no expression")
			}
			f.assertNoWrites(t, rs)
		})
	}
}

// A rule of provenance converted_prometheus in a group healthrouter writes
// would make Grafana refuse the write: the plan says so instead of
// failing every reconcile.
func TestConvertedPrometheusRuleBlocksItsGroup(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	rs := regions("eu-west-1")
	f.apply(t, rs)
	uid := f.srv.RuleUIDs()[0]
	f.srv.SetRuleProvenance(uid, "converted_prometheus")
	if _, text := planText(t, f, rs); !strings.Contains(text, "cannot be written") {
		t.Errorf("no block note:\n%s", text)
	}
}

// Someone else's rule already of provenance api keeps it when the group
// is written: no note says it changes.
func TestNoRestampNoteWhenProvenanceUnchanged(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	rs := regions("eu-west-1")
	f.apply(t, rs)
	postForeignRule(t, f, "other", "eu-west-1", true)
	f.cfg = loadConfig(t, f.srv.URL, "group_wait: 45s", "", testEnv(f.srv))
	f.r = f.newReconciler(t, fixtureOpts{})
	p := f.apply(t, rs)
	if strings.Contains(p.String(), "changes the provenance") {
		t.Errorf("note for an unchanged provenance:\n%s", p)
	}
}

// healthrouter's own rules, whatever their provenance, are never called
// someone else's in a note.
func TestOwnRulesNeverCalledSomeoneElses(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	rs := regions("eu-west-1")
	f.apply(t, rs)
	for _, uid := range f.srv.RuleUIDs() {
		f.srv.SetRuleProvenance(uid, "")
	}
	f.cfg = loadConfig(t, f.srv.URL, "group_wait: 45s", "", testEnv(f.srv))
	f.r = f.newReconciler(t, fixtureOpts{})
	p := f.apply(t, rs)
	if strings.Contains(p.String(), "someone else's") {
		t.Errorf("own rules called someone else's:\n%s", p)
	}
}
