package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/grafana"
	"github.com/healthrouter/healthrouter/pkg/pagerduty"
)

func init() {
	register("plan", "show what apply would change in Grafana (exit 2: changes pending)", plan)
	register("apply", "provision Grafana once: folder, rule groups, contact points, routing", apply)
	register("export", "write the Grafana objects as file-provisioning YAML", export)
	register("pagerduty", "pagerduty test (send a test page and resolve it) | verify (check routing keys)", pagerdutyCmd.run)
}

var pagerdutyCmd = group{name: "pagerduty", subs: []subcommand{
	{names: []string{"test"}, synopsis: "[--key NAME] [--config FILE]",
		summary: "send a test page through each routing key and resolve it", run: pagerdutyTest},
	{names: []string{"verify"}, synopsis: "[--key NAME] [--config FILE]",
		summary: "check that each routing key reaches an enabled service with an escalation policy", run: pagerdutyVerify},
}}

// regionFlags say where the regions to provision come from: named on the
// command line, or asked of a running server.
type regionFlags struct {
	regions string
	api     apiClient
}

func (r *regionFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.regions, "regions", "", "comma-separated `regions` to provision (default: those a running --server has seen)")
	r.api.register(fs)
}

func (r *regionFlags) load(ctx context.Context) ([]grafana.Region, error) {
	if r.regions != "" {
		var out []grafana.Region
		for _, name := range strings.Split(r.regions, ",") {
			if name = strings.TrimSpace(name); name != "" {
				out = append(out, grafana.Region{Name: name})
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out, nil
	}
	r.api.useToken(false)
	var resp struct {
		Regions []struct {
			Name      string    `json:"name"`
			LastEvent time.Time `json:"last_event"`
		} `json:"regions"`
	}
	if err := r.api.do(ctx, http.MethodGet, "/v1/regions", nil, &resp); err != nil {
		return nil, fmt.Errorf("regions from %s (or give --regions): %w", r.api.base, err)
	}
	out := make([]grafana.Region, len(resp.Regions))
	for i, reg := range resp.Regions {
		out[i] = grafana.Region{Name: reg.Name, LastSeen: reg.LastEvent}
	}
	return out, nil
}

// provisioning is what plan and apply share: the reconciler and the
// regions to provision.
type provisioning struct {
	reconciler *grafana.Reconciler
	regions    []grafana.Region
}

// newProvisioning parses a provisioning command's flags and config. Every
// command needs the Grafana token; only one that writes contact points
// (needKeys) needs the PagerDuty routing keys: plan names in its output
// the ones that are not set.
func newProvisioning(ctx context.Context, name string, args []string, stderr io.Writer, needKeys bool) (*provisioning, error) {
	fs := newFlagSet(name, stderr)
	var cf configFlags
	var rf regionFlags
	cf.register(fs, false)
	rf.register(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return nil, err
	}
	cfg, err := cf.load()
	if err != nil {
		return nil, err
	}
	if cfg.Grafana == nil {
		return nil, errors.New("the config has no grafana section: nothing to provision")
	}
	switch {
	case needKeys:
		if ps := cfg.MissingSecrets(); len(ps) > 0 {
			return nil, fmt.Errorf("secrets missing from the environment:\n%w", ps)
		}
	case cfg.Grafana.Token == "":
		return nil, fmt.Errorf("%s is not set: %s reads Grafana's provisioning API", config.EnvGrafanaToken, name)
	}
	regions, err := rf.load(ctx)
	if err != nil {
		return nil, err
	}
	// The command's error reports a failed read or write; the reconciler's
	// own warnings about it would only say it a second time.
	log, err := newLogger(config.Log{Level: "error", Format: "console"}, stderr)
	if err != nil {
		return nil, err
	}
	r, err := grafana.New(cfg, log, nil)
	if err != nil {
		return nil, err
	}
	return &provisioning{reconciler: r, regions: regions}, nil
}

func plan(args []string, stdout, stderr io.Writer) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	p, err := newProvisioning(ctx, "plan", args, stderr, false)
	if err != nil {
		return planError(err)
	}
	diff, err := p.reconciler.Plan(ctx, p.regions)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, diff.String())
	if !diff.Empty() {
		return &exitError{code: 2}
	}
	return nil
}

// planError keeps plan's exit code 2 for "changes pending" alone: a CI
// job reading it must not take a mistyped flag for drift, so plan's usage
// errors exit 1 like every other failure.
func planError(err error) error {
	var ee *exitError
	if errors.As(err, &ee) && ee.code == 2 {
		return &exitError{code: 1, msg: ee.msg}
	}
	return err
}

func apply(args []string, stdout, stderr io.Writer) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	p, err := newProvisioning(ctx, "apply", args, stderr, true)
	if err != nil {
		return err
	}
	done, err := p.reconciler.Apply(ctx, p.regions)
	switch {
	case err == nil:
		fmt.Fprint(stdout, done.Applied())
	case !done.Empty():
		// Say what did change before the failure; nothing at all when
		// nothing did, rather than a "no changes" that reads as success.
		fmt.Fprint(stdout, "Before the error: "+done.Applied())
	}
	return err
}

func export(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", stderr)
	var cf configFlags
	var rf regionFlags
	cf.register(fs, false)
	rf.register(fs)
	out := fs.String("out", "", "write to `file` instead of stdout")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	if cfg.Grafana == nil {
		return errors.New("the config has no grafana section: nothing to export")
	}
	regions, err := rf.load(context.Background())
	if err != nil {
		return err
	}
	if *out == "" {
		return grafana.Export(cfg, regions, time.Now(), stdout)
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := grafana.Export(cfg, regions, time.Now(), f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func pagerdutyTest(args []string, stdout, stderr io.Writer) error {
	cfg, key, err := pagerdutyFlags("test", args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	return pagerduty.SendTest(ctx, cfg.PagerDuty, key, stdout)
}

func pagerdutyVerify(args []string, stdout, stderr io.Writer) error {
	cfg, key, err := pagerdutyFlags("verify", args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	ok, err := pagerduty.Verify(ctx, cfg.PagerDuty, key, stdout)
	if err != nil {
		return err
	}
	if !ok {
		return &exitError{code: 1, msg: "some routing keys do not page as configured (see above)"}
	}
	return nil
}

// pagerdutyFlags parses a pagerduty subcommand's flags and loads the
// config, which must name routing keys.
func pagerdutyFlags(sub string, args []string, stderr io.Writer) (*config.Config, string, error) {
	fs := newFlagSet("pagerduty "+sub, stderr)
	var cf configFlags
	cf.register(fs, false)
	key := fs.String("key", "", "routing key `name` to "+sub+" (default: every key)")
	if err := parseNoArgs(fs, args); err != nil {
		return nil, "", err
	}
	cfg, err := cf.load()
	if err != nil {
		return nil, "", err
	}
	if cfg.PagerDuty == nil || len(cfg.PagerDuty.RoutingKeys) == 0 {
		return nil, "", errors.New("the config has no pagerduty.routing_keys")
	}
	return cfg, *key, nil
}
