package grafana

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/grafana/grafana-openapi-client-go/client/provisioning"
	"github.com/grafana/grafana-openapi-client-go/models"
	"go.uber.org/zap/zapcore"
)

var update = flag.Bool("update", false, "rewrite golden files and the grafana/ examples")

// golden compares got with the file, or rewrites the file with -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/grafana -run %s -update)", err, t.Name())
	}
	if string(want) != got {
		t.Errorf("%s is out of date (run go test ./pkg/grafana -run %s -update); got:\n%s", path, strings.Split(t.Name(), "/")[0], got)
	}
}

// secrets are values that must never appear in output.
var secrets = []string{keyDefault, keyStorage, rotatedKey}

const rotatedKey = "00000000000000001111111111111111"

func assertNoSecret(t *testing.T, what, text string, more ...string) {
	t.Helper()
	for _, s := range append(append([]string(nil), secrets...), more...) {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains a secret", what)
		}
	}
}

func TestPlanGolden(t *testing.T) {
	t.Run("first", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		rs := regions("eu-west-1", "us-east-1")
		p, err := f.r.Plan(context.Background(), rs)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := f.r.Plan(context.Background(), rs)
		if p.String() != again.String() {
			t.Fatal("two plans of the same state differ")
		}
		if f.srv.Writes() != 0 {
			t.Fatal("plan wrote to Grafana")
		}
		golden(t, "testdata/plan_first.golden", p.String())
		assertNoSecret(t, "plan", p.String(), f.srv.Token)
	})
	t.Run("drift", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{grafana: "prune: true\nprune_after: 168h"})
		f.apply(t, regions("eu-west-1", "us-east-1", "ap-south-1"))

		editRule(t, f.srv, "hr-host-eu-west-1", func(r *models.ProvisionedAlertRule) {
			d := strfmt.Duration(10 * time.Minute)
			r.For = &d
			r.Labels["team"] = "someone"
		})
		editRule(t, f.srv, "hr-region-us-east-1", func(r *models.ProvisionedAlertRule) { r.IsPaused = true })
		c := f.srv.Client()
		if _, err := c.Provisioning.DeleteAlertRule(provisioning.NewDeleteAlertRuleParams().WithUID("hr-hostr1-us-east-1")); err != nil {
			t.Fatal(err)
		}
		p := provisioning.NewPutAlertRuleGroupParams().WithFolderUID(folder).WithGroup("eu-west-1").WithBody(&models.AlertRuleGroup{Interval: 120})
		if _, err := c.Provisioning.PutAlertRuleGroup(p); err != nil {
			t.Fatal(err)
		}
		cp, _, _ := f.srv.ContactPoint("hr-pd-default")
		cp.Settings.(map[string]any)["severity"] = "critical"
		cp.Settings.(map[string]any)["integrationKey"] = "[REDACTED]"
		if _, err := c.Provisioning.PutContactpoint(provisioning.NewPutContactpointParams().WithUID(cp.UID).WithBody(&cp)); err != nil {
			t.Fatal(err)
		}
		env := testEnv(f.srv)
		env["HR_PD_STORAGE"] = rotatedKey
		f.cfg = loadConfig(t, f.srv.URL, "prune: true\nprune_after: 168h", "", env)
		f.r = f.newReconciler(t, fixtureOpts{})

		rs := []Region{
			{Name: "eu-west-1", LastSeen: t0}, {Name: "us-east-1", LastSeen: t0},
			{Name: "ap-south-1", LastSeen: t0.Add(-10 * 24 * time.Hour)}, {Name: "sa-east-1", LastSeen: t0},
		}
		plan, err := f.r.Plan(context.Background(), rs)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "testdata/plan_drift.golden", plan.String())
		assertNoSecret(t, "plan", plan.String(), f.srv.Token)

		done := f.apply(t, rs)
		if done.String() != plan.String() {
			t.Errorf("apply did something else than planned:\n%s", done)
		}
		f.assertNoWrites(t, rs)
	})
}

func TestSecretsStayOut(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	rs := regions("eu-west-1")
	f.srv.FailWrite(3, 500)
	_, err := f.r.Apply(context.Background(), rs)
	if err == nil {
		t.Fatal("expected the injected failure")
	}
	p := f.apply(t, rs)
	plan, _ := f.r.Plan(context.Background(), rs)
	st := f.r.Status()

	assertNoSecret(t, "error", err.Error(), f.srv.Token)
	assertNoSecret(t, "plan", p.String()+plan.String(), f.srv.Token)
	assertNoSecret(t, "status", fmt.Sprintf("%+v %#v", st, st), f.srv.Token)
	assertNoSecret(t, "config", fmt.Sprintf("%+v %+v %#v", f.cfg.Grafana, f.cfg.PagerDuty, f.cfg.PagerDuty), f.srv.Token)
	if f.logs.Len() == 0 {
		t.Fatal("no logs observed")
	}
	for _, e := range f.logs.All() {
		enc := zapcore.NewMapObjectEncoder()
		for _, field := range e.Context {
			field.AddTo(enc)
		}
		assertNoSecret(t, "log entry "+e.Message, e.Message+fmt.Sprint(enc.Fields), f.srv.Token)
	}
	mfs, _ := f.reg.Gather()
	assertNoSecret(t, "metrics", fmt.Sprint(mfs), f.srv.Token)
}

func TestErrorsAreRedacted(t *testing.T) {
	a := &grafanaAPI{redact: strings.NewReplacer(keyDefault, "[REDACTED]")}
	err := a.wrap("create contact point x", errors.New("integrationKey "+keyDefault+" rejected"))
	if strings.Contains(err.Error(), keyDefault) || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Fatalf("error not redacted: %v", err)
	}
}
