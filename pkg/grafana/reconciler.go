// Package grafana provisions healthrouter's alerting in Grafana: a folder,
// one rule group per region seen (a multi-dimensional host rule and region
// rule over healthrouter_alert) plus a pipeline watchdog group, one PagerDuty
// contact point per routing key, and routing to them through rule
// notification settings or one sub-route of the notification policy tree.
//
// The Reconciler keeps Grafana in that state through the provisioning API;
// Export writes the same objects as Grafana file-provisioning YAML.
package grafana

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/grafana/grafana-openapi-client-go/models"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// Reconciler decides what healthrouter's share of Grafana must be, from the
// configuration and the regions seen, and makes Grafana hold exactly that:
// it creates, updates and deletes only objects marked as its own (rules
// labelled managed_by=healthrouter with uids starting hr-, contact points
// named healthrouter-*, the policy sub-route matching managed_by), leaves
// everything else as it found it, and sends no write when nothing differs.
// Rule groups are written whole, so each group write is atomic, and every
// reconcile starts from what Grafana holds, so a reconcile that failed
// half-way is completed by the next one.
type Reconciler struct {
	b       *builder
	api     *grafanaAPI
	log     *zap.Logger
	clock   Clock
	metrics *metrics
	opts    options
	started time.Time

	applyMu sync.Mutex // one reconcile at a time

	mu     sync.Mutex
	status Status
	// notes are the last reconcile's plan notes: a note is logged as a
	// warning when it first appears, not on every reconcile.
	notes map[string]bool
	// version is what Grafana's health endpoint last said it runs.
	version string
}

// Status is what the last reconcile attempts came to, for /readyz.
type Status struct {
	// Healthy: the last reconcile succeeded and Grafana is reachable.
	Healthy     bool      `json:"healthy"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	// FirstAttempt is this process's first reconcile. RulesSince is when
	// this process first knew Grafana to hold healthrouter's rules: a
	// reconcile read some in its folder, or wrote them all. Until then,
	// whatever Grafana answers, nothing says it can page anything.
	FirstAttempt time.Time `json:"first_attempt,omitzero"`
	RulesSince   time.Time `json:"rules_since,omitzero"`
	// UnreachableSince is when Grafana stopped answering (no response, or
	// a 5xx but a 500 to a write: callError.Unreachable), zero while it
	// answers. Direct PagerDuty paging keys off it.
	UnreachableSince time.Time `json:"unreachable_since,omitzero"`
	// ReachableSince is when Grafana began answering without a break,
	// zero while it does not answer. Direct paging stops only once Grafana
	// has answered for a while: one answer in an outage is not a recovery.
	ReachableSince time.Time `json:"reachable_since,omitzero"`
	// LastAnswer is when Grafana last answered at all (any status but a
	// 5xx, a 500 to a write excepted), even to refuse a write: it is up and
	// can alert.
	LastAnswer          time.Time `json:"last_answer,omitzero"`
	LastError           string    `json:"last_error,omitempty"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
}

// Clock is the time source Run waits on; tests pass a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

type options struct {
	clock       Clock
	httpClient  *http.Client
	backoffBase time.Duration
	backoffMax  time.Duration
	probeEvery  time.Duration
	debounce    time.Duration
	jitter      func(time.Duration) time.Duration
	concurrency int
}

// Option adjusts a Reconciler. The service runs with the defaults; the
// options are there for tests, to inject a clock, an HTTP client and
// shorter delays.
type Option func(*options)

// WithClock sets the clock (default: the system clock).
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// WithHTTPClient sets the HTTP client for Grafana; its Timeout bounds each
// request (default: a client with grafana.timeout).
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithBackoff sets the retry delays after a failed reconcile: base doubling
// per failure up to max (defaults 1s and reconcile_every), with jitter.
func WithBackoff(base, max time.Duration) Option {
	return func(o *options) { o.backoffBase, o.backoffMax = base, max }
}

// WithProbeInterval sets how often Run checks that Grafana answers between
// reconciles, which keeps Status.UnreachableSince current (default 15s).
func WithProbeInterval(d time.Duration) Option { return func(o *options) { o.probeEvery = d } }

// WithDebounce sets how long Run waits after a new-region signal before
// reconciling, so a burst of new regions costs one reconcile (default 2s).
func WithDebounce(d time.Duration) Option { return func(o *options) { o.debounce = d } }

// withJitter replaces the random jitter (tests).
func withJitter(f func(time.Duration) time.Duration) Option {
	return func(o *options) { o.jitter = f }
}

// New builds a Reconciler for cfg.Grafana. Metrics are registered with reg
// when it is not nil. Nothing is sent to Grafana until Plan, Apply or Run.
func New(cfg *config.Config, logger *zap.Logger, reg prometheus.Registerer, opts ...Option) (*Reconciler, error) {
	b, err := newBuilder(cfg)
	if err != nil {
		return nil, err
	}
	o := options{
		clock:       realClock{},
		backoffBase: time.Second,
		backoffMax:  cfg.Grafana.ReconcileEvery.D(),
		probeEvery:  15 * time.Second,
		debounce:    2 * time.Second,
		jitter:      equalJitter,
		concurrency: 4,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.backoffMax <= 0 {
		o.backoffMax = 5 * time.Minute
	}
	if o.backoffBase <= 0 || o.backoffBase > o.backoffMax {
		o.backoffBase = min(time.Second, o.backoffMax)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	r := &Reconciler{b: b, log: logger.Named("grafana"), clock: o.clock, metrics: m, opts: o}
	r.started = o.clock.Now()
	secrets := []string{cfg.Grafana.Token.Reveal()}
	for _, k := range cfg.PagerDuty.Keys {
		secrets = append(secrets, k.Reveal())
	}
	r.api, err = newGrafanaAPI(cfg.Grafana, o.httpClient, secrets, r.recordWrite)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reconciler) recordWrite(kind, action, name string) {
	r.metrics.writes.WithLabelValues(kind, action).Inc()
	r.log.Info("grafana write", zap.String("kind", kind), zap.String("action", action), zap.String("name", name))
}

// Plan reads Grafana and returns what Apply would change. It sends no write.
func (r *Reconciler) Plan(ctx context.Context, regions []Region) (*Plan, error) {
	d := r.b.build(regions, r.clock.Now())
	snap, err := r.read(ctx, d)
	r.noteContact(err)
	if err != nil {
		return nil, err
	}
	p := r.diff(d, snap, r.clock.Now())
	// A region's rule, not the watchdog alone, is what pages alerts.
	p.rulesStand = snap.folder != nil && slices.ContainsFunc(snap.rules, func(rule *models.ProvisionedAlertRule) bool {
		return s(rule.FolderUID) == d.folderUID && isManagedRule(rule) && rule.UID != watchdogUID(d.folderUID)
	})
	return p, nil
}

// Apply makes Grafana hold the desired state for regions and returns the
// changes it made. On error the returned plan holds the changes that were
// made before the failure; the next Apply completes the rest.
func (r *Reconciler) Apply(ctx context.Context, regions []Region) (*Plan, error) {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	start := r.clock.Now()
	r.mu.Lock()
	r.status.LastAttempt = start
	if r.status.FirstAttempt.IsZero() {
		r.status.FirstAttempt = start
	}
	r.mu.Unlock()

	done, err := r.apply(ctx, regions)
	r.finish(start, done, err)
	return done, err
}

func (r *Reconciler) apply(ctx context.Context, regions []Region) (done *Plan, err error) {
	done = &Plan{}
	defer func() {
		// A bug here must not take the service down with it: report it
		// as a failed reconcile and let the next one try again.
		if p := recover(); p != nil {
			r.log.Error("grafana reconcile panicked", zap.Any("panic", p), zap.Stack("stack"))
			err = fmt.Errorf("grafana reconcile: internal error: %v", p)
		}
	}()
	plan, err := r.Plan(ctx, regions)
	if err != nil {
		return done, err
	}
	done.Notes, done.planned, done.rulesStand = plan.Notes, true, plan.rulesStand
	var errs []error
	for _, o := range plan.ops {
		if o.precheck != nil {
			if err := o.precheck(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return done, errors.Join(errs...)
	}
	failedPhase := -1
	for _, o := range plan.ops {
		if failedPhase >= 0 && o.phase > failedPhase {
			break // later phases may depend on what failed
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		err := o.run(ctx, r.api)
		r.noteContact(err)
		if err == nil {
			done.Changes = append(done.Changes, o.change)
			continue
		}
		errs = append(errs, err)
		failedPhase = o.phase
		if !o.independent || isUnreachable(err) {
			break
		}
	}
	return done, errors.Join(errs...)
}

// finish records a reconcile's outcome in the status and metrics.
func (r *Reconciler) finish(start time.Time, done *Plan, err error) {
	now := r.clock.Now()
	r.metrics.duration.Observe(now.Sub(start).Seconds())
	r.mu.Lock()
	defer r.mu.Unlock()
	if done.planned {
		// A reconcile that could not read Grafana has no notes to say,
		// and forgets none of those already said.
		r.logNotesLocked(done.Notes)
	}
	if r.status.RulesSince.IsZero() && (err == nil || done.rulesStand) {
		r.status.RulesSince = now
	}
	if err != nil {
		r.metrics.reconciles.WithLabelValues(resultError).Inc()
		r.status.ConsecutiveFailures++
		r.status.LastError = err.Error()
		r.status.Healthy = false
		r.log.Warn("grafana reconcile failed", zap.Error(err), zap.Int("consecutive_failures", r.status.ConsecutiveFailures),
			zap.Int("changes_made", len(done.Changes)))
		return
	}
	result := resultNoop
	if !done.Empty() {
		result = resultApplied
	}
	r.metrics.reconciles.WithLabelValues(result).Inc()
	r.metrics.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
	r.status.ConsecutiveFailures = 0
	r.status.LastError = ""
	r.status.LastSuccess = now
	r.status.Healthy = r.status.UnreachableSince.IsZero()
	if done.Empty() {
		r.log.Debug("grafana reconcile: nothing to change")
	} else {
		r.log.Info("grafana reconciled", zap.Int("changes", len(done.Changes)))
	}
}

// logNotesLocked logs a reconcile's plan notes. Notes say what healthrouter
// leaves alone and why (a group it cannot write leaves a region's rules
// stale), or why a reconcile fails: each is worth a warning when it first
// appears, not on every reconcile. Callers hold r.mu.
func (r *Reconciler) logNotesLocked(notes []string) {
	seen := make(map[string]bool, len(notes))
	for _, n := range notes {
		seen[n] = true
		if r.notes[n] {
			r.log.Debug("grafana reconcile note", zap.String("note", n))
		} else {
			r.log.Warn("grafana reconcile note", zap.String("note", n))
		}
	}
	r.notes = seen
}

// grafanaVersion is the version Grafana runs, as its health endpoint (which
// Run probes between reconciles) last said; asked now when not known yet.
// It only explains failures to come: not knowing it is no reason to stop.
func (r *Reconciler) grafanaVersion(ctx context.Context) string {
	r.mu.Lock()
	v := r.version
	r.mu.Unlock()
	if v != "" && createsRulesByUID(v) {
		return v
	}
	// Unknown, or too old: asked again, so an upgrade clears the note at
	// the next reconcile even when reconciles leave no room for probes.
	asked, err := r.api.health(ctx)
	if err != nil {
		return v
	}
	r.noteVersion(asked)
	return asked
}

// noteVersion records the version Grafana's health endpoint reported.
func (r *Reconciler) noteVersion(v string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.version = v
}

// noteContact updates reachability from the outcome of a call to Grafana.
func (r *Reconciler) noteContact(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil && isUnreachable(err) {
		r.status.ReachableSince = time.Time{}
		if r.status.UnreachableSince.IsZero() {
			r.status.UnreachableSince = r.clock.Now()
			r.log.Warn("grafana unreachable", zap.Error(err))
		}
		r.status.Healthy = false
		r.metrics.up.Set(0)
		return
	}
	if err != nil && errors.Is(err, context.Canceled) {
		return // our own shutdown says nothing about Grafana
	}
	r.status.LastAnswer = r.clock.Now()
	if !r.status.UnreachableSince.IsZero() {
		r.log.Info("grafana reachable again", zap.Duration("after", r.clock.Now().Sub(r.status.UnreachableSince)))
	}
	r.status.UnreachableSince = time.Time{}
	if r.status.ReachableSince.IsZero() {
		r.status.ReachableSince = r.status.LastAnswer
	}
	r.metrics.up.Set(1)
}

// Status returns the outcome of the latest reconciles.
func (r *Reconciler) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// snapshot is what Grafana holds of interest.
type snapshot struct {
	folder *models.Folder
	rules  []*models.ProvisionedAlertRule
	// groups of healthrouter's folder that are desired or hold its rules.
	groups        map[string]*models.AlertRuleGroup
	contactPoints []*models.EmbeddedContactPoint
	policy        *policyTree
	// version is the Grafana version its health endpoint reports, "" when
	// unknown.
	version string
}

// isManagedRule reports whether a rule is healthrouter's: it carries the
// managed_by label and a uid starting hr-. Both are needed: a copy made with
// Grafana's "Duplicate" keeps the labels but gets a new uid, and is its
// author's rule, not one to delete.
func isManagedRule(r *models.ProvisionedAlertRule) bool {
	return r != nil && r.Labels[ManagedByLabel] == ManagedByValue && strings.HasPrefix(r.UID, UIDPrefix)
}

func (r *Reconciler) read(ctx context.Context, d *desiredState) (*snapshot, error) {
	snap := &snapshot{groups: map[string]*models.AlertRuleGroup{}}
	snap.version = r.grafanaVersion(ctx)
	var err error
	if snap.folder, err = r.api.getFolder(ctx, d.folderUID); err != nil {
		return nil, err
	}
	if snap.rules, err = r.api.listRules(ctx); err != nil {
		return nil, err
	}
	if snap.contactPoints, err = r.api.listContactPoints(ctx); err != nil {
		return nil, err
	}
	if snap.policy, err = r.api.getPolicy(ctx); err != nil {
		return nil, err
	}
	if snap.folder == nil {
		return snap, nil
	}
	desired := map[string]bool{}
	for _, g := range d.groups {
		desired[g.name] = true
	}
	want := map[string]bool{}
	for _, rule := range snap.rules {
		if s(rule.FolderUID) == d.folderUID && (isManagedRule(rule) || desired[s(rule.RuleGroup)]) {
			want[s(rule.RuleGroup)] = true
		}
	}
	names := slices.Sorted(maps.Keys(want))
	results := make([]*models.AlertRuleGroup, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, r.opts.concurrency)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i], errs[i] = r.api.getGroup(ctx, name)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, name := range names {
		if results[i] != nil {
			snap.groups[name] = results[i]
		}
	}
	return snap, nil
}

// diff turns the difference between desired and held state into a plan.
func (r *Reconciler) diff(d *desiredState, snap *snapshot, now time.Time) *Plan {
	p := &Plan{}
	if snap.folder == nil {
		uid, title := d.folderUID, d.folderTitle
		p.add(op{
			change: Change{Kind: kindFolder, Action: actionCreate, Name: uid, Details: []string{fmt.Sprintf("title %q", title)}},
			phase:  phaseFolder,
			run:    func(ctx context.Context, a *grafanaAPI) error { return a.createFolder(ctx, uid, title) },
		})
	} else if snap.folder.Title != d.folderTitle {
		p.Notes = append(p.Notes, fmt.Sprintf("folder %s is titled %q, not %q; titles are left to whoever renamed it",
			d.folderUID, snap.folder.Title, d.folderTitle))
	}
	if v := snap.version; v != "" && !createsRulesByUID(v) {
		p.Notes = append(p.Notes, fmt.Sprintf("Grafana %s is older than 11.5.2, which healthrouter needs: it refuses (500) a rule group "+
			"write that creates a rule with the uid healthrouter gives it (grafana/grafana#98283), so new regions' rules cannot be created", v))
	}
	r.diffContactPoints(p, d, snap)
	r.diffPolicy(p, d, snap)
	r.diffGroups(p, d, snap, now)
	return p
}

// createsRulesByUID reports whether Grafana version v creates a rule with
// the uid a rule group write gives it: from 11.5.2 (grafana/grafana#99858).
// An unreadable version is taken to.
func createsRulesByUID(v string) bool {
	var major, minor, patch int
	if _, err := fmt.Sscanf(v, "%d.%d.%d", &major, &minor, &patch); err != nil {
		return true
	}
	return major > 11 || (major == 11 && (minor > 5 || (minor == 5 && patch >= 2)))
}

func (r *Reconciler) diffContactPoints(p *Plan, d *desiredState, snap *snapshot) {
	byUID := map[string]*models.EmbeddedContactPoint{}
	for _, cp := range snap.contactPoints {
		byUID[cp.UID] = cp
	}
	wanted := map[string]bool{}
	for _, dc := range d.contactPoints {
		wanted[dc.cp.UID] = true
		have := byUID[dc.cp.UID]
		if have == nil {
			for _, other := range snap.contactPoints {
				if other.Name == dc.cp.Name {
					p.Notes = append(p.Notes, fmt.Sprintf("contact point %s already has an integration with uid %s that healthrouter does not manage: "+
						"alerts routed to it reach both", dc.cp.Name, other.UID))
					break
				}
			}
			detail := "pagerduty, routing key from $" + dc.envVar
			if dc.secret == "" {
				detail += " (not set: apply will fail until it is)"
			}
			p.add(op{
				change: Change{Kind: kindContactPoint, Action: actionCreate, Name: dc.cp.Name, Details: []string{detail}},
				phase:  phaseContactPoints,
				precheck: func() error {
					if dc.secret == "" {
						return fmt.Errorf("contact point %s: routing key %q comes from $%s, which is not set", dc.cp.Name, dc.key, dc.envVar)
					}
					return nil
				},
				run: func(ctx context.Context, a *grafanaAPI) error {
					return a.createContactPoint(ctx, dc.withKey(dc.secret.Reveal(), dc.fingerprint))
				},
			})
			continue
		}
		details := diffContactPoint(dc.cp, have)
		stored, _ := settingsMap(have.Settings)[keyFingerprintSetting].(string)
		if dc.fingerprint == "" {
			p.Notes = append(p.Notes, fmt.Sprintf("contact point %s: $%s is not set, so its routing key cannot be checked; Grafana keeps the key it has",
				dc.cp.Name, dc.envVar))
		}
		if !provenanceWritable(have.Provenance) {
			p.Notes = append(p.Notes, readOnlyContactPointNote(dc, have.Provenance, details, stored))
			continue
		}
		if dc.fingerprint != "" && stored != dc.fingerprint {
			details = append(details, "routing key from $"+dc.envVar+" differs from the one Grafana holds")
		}
		locked := provenanceLocked(dc.cp.Provenance, have.Provenance)
		if locked {
			p.Notes = append(p.Notes, fmt.Sprintf("contact point %s has provenance %q, which Grafana does not let the API clear "+
				"(grafana.disable_provenance): it stays read-only in Grafana's UI and healthrouter keeps writing it with that provenance, "+
				"so updates such as a key rotation still apply; to unlock it, delete it in Grafana once no rule or policy routes to it "+
				"and let healthrouter re-create it", dc.cp.Name, have.Provenance))
		}
		if len(details) == 0 {
			continue
		}
		// Without the key, "[REDACTED]" tells Grafana to keep the stored
		// one, and the stored fingerprint stays true.
		key, fp := "[REDACTED]", stored
		if dc.fingerprint != "" {
			key, fp = dc.secret.Reveal(), dc.fingerprint
		}
		p.add(op{
			change: Change{Kind: kindContactPoint, Action: actionUpdate, Name: dc.cp.Name, Details: details},
			phase:  phaseContactPoints,
			run: func(ctx context.Context, a *grafanaAPI) error {
				if locked {
					ctx = keepingProvenance(ctx)
				}
				return a.updateContactPoint(ctx, dc.withKey(key, fp))
			},
		})
	}
	var stale []*models.EmbeddedContactPoint
	for _, cp := range snap.contactPoints {
		if isManagedContactPoint(cp) && !wanted[cp.UID] {
			stale = append(stale, cp)
		}
	}
	sort.Slice(stale, func(i, j int) bool { return stale[i].UID < stale[j].UID })
	for _, cp := range stale {
		uid, name := cp.UID, cp.Name
		if !provenanceWritable(cp.Provenance) {
			p.Notes = append(p.Notes, fmt.Sprintf("contact point %s is no longer configured, but it has provenance %q (from Grafana's "+
				"provisioning files), so healthrouter leaves it: remove it from those files and delete it in Grafana", name, cp.Provenance))
			continue
		}
		locked := provenanceLocked(r.b.provenance, cp.Provenance)
		p.add(op{
			change: Change{Kind: kindContactPoint, Action: actionDelete, Name: name, Details: []string{"routing key no longer configured"}},
			phase:  phaseContactPointCleanup,
			run: func(ctx context.Context, a *grafanaAPI) error {
				if locked {
					ctx = keepingProvenance(ctx)
				}
				return a.deleteContactPoint(ctx, uid, name)
			},
		})
	}
}

// readOnlyContactPointNote explains why a contact point healthrouter wants
// is left as Grafana holds it: its provenance (from Grafana's provisioning
// files, such as those healthrouter export writes) is one the API cannot
// change, so Grafana would refuse every write. details are how it differs
// from the desired one, storedFingerprint the key fingerprint it carries.
func readOnlyContactPointNote(dc *desiredContactPoint, provenance string, details []string, storedFingerprint string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "contact point %s has provenance %q (from Grafana's provisioning files), which many Grafana versions do not let the API change, "+
		"so healthrouter does not write it", dc.cp.Name, provenance)
	if dc.fingerprint != "" && storedFingerprint != "" && storedFingerprint != dc.fingerprint {
		details = append(details, "routing key from $"+dc.envVar+" differs from the one Grafana holds")
	}
	if len(details) > 0 {
		b.WriteString("; it differs from what healthrouter wants (" + strings.Join(details, "; ") + "), and such changes do not reach it")
	}
	if dc.fingerprint != "" && storedFingerprint == "" {
		b.WriteString("; its routing key cannot be checked against $" + dc.envVar + ", so a rotated key reaches it only through those files")
	}
	b.WriteString("; to let healthrouter manage it, remove it from the provisioning files and delete it in Grafana " +
		"(healthrouter then re-creates it), or keep those files up to date instead")
	return b.String()
}

func isManagedContactPoint(cp *models.EmbeddedContactPoint) bool {
	return s(cp.Type) == "pagerduty" && strings.HasPrefix(cp.Name, ContactPointPrefix) && strings.HasPrefix(cp.UID, UIDPrefix+"pd-")
}

// withKey returns the contact point to send, with the key and fingerprint.
func (dc *desiredContactPoint) withKey(key, fingerprint string) *models.EmbeddedContactPoint {
	settings := settingsMap(dc.cp.Settings)
	settings["integrationKey"] = key
	if fingerprint != "" {
		settings[keyFingerprintSetting] = fingerprint
	}
	cp := *dc.cp
	cp.Settings = settings
	return &cp
}

func (r *Reconciler) diffPolicy(p *Plan, d *desiredState, snap *snapshot) {
	managed := snap.policy.managed()
	want := d.policyRoute
	// Provenance belongs to the whole tree. It is healthrouter's concern
	// only while the tree holds its route.
	var held models.Provenance
	if snap.policy != nil {
		held = snap.policy.provenance
	}
	provChanges := want != nil && held != r.b.provenance && !provenanceLocked(r.b.provenance, held)
	if (want != nil || len(managed) > 0) && provenanceLocked(r.b.provenance, held) {
		p.Notes = append(p.Notes, fmt.Sprintf("the notification policy tree has provenance %q, which Grafana does not let the API clear "+
			"(grafana.disable_provenance): it stays read-only in Grafana's UI and healthrouter keeps writing its route with that provenance; "+
			"to unlock it, export the tree, reset it (DELETE /api/v1/provisioning/policies), re-create the other routes, "+
			"and let healthrouter add its own", held))
	}
	var change Change
	phase := phasePolicy
	switch {
	case want != nil && len(managed) == 0:
		change = Change{Kind: kindPolicy, Action: actionCreate, Name: "route managed_by=" + ManagedByValue,
			Details: []string{"first child of the root policy, to " + want.Receiver + routeTargets(want)}}
	case want != nil && (len(managed) > 1 || !sameRouteJSON(managed[0], routeJSON(want)) || provChanges):
		details := []string{"to " + want.Receiver + routeTargets(want)}
		if provChanges {
			details = append(details, fmt.Sprintf("provenance %q -> %q (of the whole tree)", held, r.b.provenance))
		}
		change = Change{Kind: kindPolicy, Action: actionUpdate, Name: "route managed_by=" + ManagedByValue, Details: details}
	case want == nil && len(managed) > 0:
		change = Change{Kind: kindPolicy, Action: actionDelete, Name: "route managed_by=" + ManagedByValue,
			Details: []string{"routing is by rule notification settings"}}
		phase = phasePolicyCleanup
	default:
		return
	}
	p.add(op{change: change, phase: phase, run: func(ctx context.Context, a *grafanaAPI) error {
		return r.writePolicy(ctx, a, want, change.Action)
	}})
}

func routeTargets(r *models.Route) string {
	var parts []string
	for _, c := range r.Routes {
		var ms []string
		for _, m := range c.ObjectMatchers {
			ms = append(ms, strings.Join(m, ""))
		}
		parts = append(parts, strings.Join(ms, ",")+" to "+c.Receiver)
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, "; ")
}

// writePolicy does the read-modify-write of the policy tree: read it fresh
// (the window for a concurrent writer is one round trip), replace only
// healthrouter's sub-route, write the whole tree, and read it back to check
// that the sub-route is in place and every other route is as it was.
func (r *Reconciler) writePolicy(ctx context.Context, a *grafanaAPI, want *models.Route, action string) error {
	tree, err := a.getPolicy(ctx)
	if err != nil {
		return err
	}
	next := withManagedRoute(tree, want)
	writeCtx := ctx
	if provenanceLocked(r.b.provenance, tree.provenance) {
		writeCtx = keepingProvenance(ctx)
	}
	if err := a.putPolicy(writeCtx, next, action); err != nil {
		return err
	}
	got, err := a.getPolicy(ctx)
	if err != nil {
		return fmt.Errorf("verify notification policies: %w", err)
	}
	return verifyPolicy(got, next, want)
}

// verifyPolicy checks the tree read back after a write (got) against the one
// written (next): healthrouter's route is exactly want (absent when want is
// nil), and every other route is as written, compared as Grafana stores
// routes (it may reorder keys and matchers and rewrite durations).
func verifyPolicy(got, next *policyTree, want *models.Route) error {
	const prefix = "verify notification policies: "
	ours := got.managed()
	switch {
	case want == nil && len(ours) > 0:
		return errors.New(prefix + "healthrouter's route is still in the tree read back (changed concurrently?)")
	case want != nil && len(ours) != 1:
		return fmt.Errorf(prefix+"the tree read back holds %d routes matching %s=%s, want 1 (changed concurrently?)",
			len(ours), ManagedByLabel, ManagedByValue)
	case want != nil && !sameRouteJSON(ours[0], routeJSON(want)):
		return errors.New(prefix + "healthrouter's route read back differs from the one written (changed concurrently?)")
	}
	if !sameOtherRoutes(got, next) {
		return errors.New(prefix + "the other routes read back differ from the ones written (changed concurrently?)")
	}
	return nil
}

// diffGroups plans the rule-group writes: every desired group Grafana does
// not hold as desired, then the pruning of groups no longer desired.
func (r *Reconciler) diffGroups(p *Plan, d *desiredState, snap *snapshot, now time.Time) {
	rules := newRuleIndex(snap.rules)
	desiredUIDs := map[string]bool{}
	for _, g := range d.groups {
		for _, rule := range g.rules {
			desiredUIDs[rule.UID] = true
		}
	}
	for _, g := range d.groups {
		diffGroup(p, g, d.folderUID, snap.groups[g.name], rules, desiredUIDs, r.b.provenance)
	}
	r.prunePlan(p, d, snap, desiredUIDs, now)
}

// ruleIndex is every rule Grafana holds, by uid and by group.
type ruleIndex struct {
	byUID   map[string]*models.ProvisionedAlertRule
	byGroup map[[2]string][]*models.ProvisionedAlertRule // by folder uid and group, in Grafana's order
}

func newRuleIndex(all []*models.ProvisionedAlertRule) *ruleIndex {
	x := &ruleIndex{byUID: map[string]*models.ProvisionedAlertRule{}, byGroup: map[[2]string][]*models.ProvisionedAlertRule{}}
	for _, rule := range all {
		x.byUID[rule.UID] = rule
		k := [2]string{s(rule.FolderUID), s(rule.RuleGroup)}
		x.byGroup[k] = append(x.byGroup[k], rule)
	}
	return x
}

// diffGroup plans the write of desired group g when Grafana holds it
// otherwise (have, nil when absent). desiredUIDs holds the uids of every
// desired rule; sent is the provenance healthrouter writes with.
func diffGroup(p *Plan, g *desiredGroup, folderUID string, have *models.AlertRuleGroup,
	rules *ruleIndex, desiredUIDs map[string]bool, sent models.Provenance) {
	body := &models.AlertRuleGroup{Title: g.name, FolderUID: folderUID, Interval: g.interval, Rules: append([]*models.ProvisionedAlertRule(nil), g.rules...)}
	var details []string
	action := actionCreate
	inGroup := map[string]*models.ProvisionedAlertRule{}
	// touched are the rules Grafana holds that the write updates or
	// deletes: it stamps sent on each (store.UpdateCalculatedRuleFields
	// adds every rule of the groups a write touches to its update, changed
	// or not), or refuses the whole write when one's provenance forbids.
	var touched []*models.ProvisionedAlertRule
	if have != nil {
		action = actionUpdate
		if have.Interval != g.interval {
			details = append(details, fmt.Sprintf("interval %s -> %s",
				promDuration(time.Duration(have.Interval)*time.Second), promDuration(time.Duration(g.interval)*time.Second)))
		}
		for _, rule := range have.Rules {
			inGroup[rule.UID] = rule
		}
		touched = append(touched, have.Rules...)
	}
	inBody := map[string]bool{}
	for _, want := range g.rules {
		inBody[want.UID] = true
	}
	sources := map[[2]string]bool{}
	var restamp []string // healthrouter's rules whose provenance the next write of g changes
	for _, want := range g.rules {
		held := inGroup[want.UID]
		if held == nil {
			held = rules.byUID[want.UID]
			if held != nil {
				// Moving in: Grafana also rewrites the group it leaves.
				touched = append(touched, held)
				if src := [2]string{s(held.FolderUID), s(held.RuleGroup)}; !sources[src] {
					sources[src] = true
					for _, rule := range rules.byGroup[src] {
						if !inBody[rule.UID] {
							touched = append(touched, rule)
						}
					}
				}
			}
		}
		if held == nil {
			details = append(details, fmt.Sprintf("+ rule %s %q", want.UID, s(want.Title)))
			continue
		}
		diff := diffRule(want, held)
		if len(diff) > 0 {
			details = append(details, fmt.Sprintf("~ rule %s %q: %s", want.UID, s(want.Title), strings.Join(diff, "; ")))
		}
		if want.Provenance != held.Provenance && len(diff) == 0 && have != nil && held == inGroup[want.UID] {
			restamp = append(restamp, want.UID)
		}
	}
	if have != nil {
		for _, rule := range have.Rules {
			switch {
			case desiredUIDs[rule.UID]:
			case isManagedRule(rule):
				details = append(details, fmt.Sprintf("- rule %s %q", rule.UID, s(rule.Title)))
			default:
				// Someone else's rule in this group: a group write replaces
				// the whole group, so it goes along unchanged.
				body.Rules = append(body.Rules, rule)
			}
		}
	}
	if blocked, ok := groupWriteBlocked(g.name, touched, sent); ok {
		p.Notes = append(p.Notes, blocked)
		return
	}
	if have != nil && len(details) == 0 {
		for _, uid := range restamp {
			p.Notes = append(p.Notes, fmt.Sprintf("rule %s has provenance %q, not %q (grafana.disable_provenance): "+
				"Grafana stamps the provenance of every rule of a group it writes, and healthrouter does not write a group "+
				"for provenance alone, so it changes with the next write of group %s", uid, inGroup[uid].Provenance, sent, g.name))
		}
		return
	}
	p.Notes = append(p.Notes, restampNotes(g.name, touched, sent)...)
	if have == nil {
		n := fmt.Sprintf("%d rules", len(g.rules))
		if len(g.rules) == 1 {
			n = "1 rule"
		}
		details = append([]string{"interval " + promDuration(time.Duration(g.interval)*time.Second) + ", " + n}, details...)
	}
	p.add(op{
		change:      Change{Kind: kindRuleGroup, Action: action, Name: g.name, Details: details},
		phase:       phaseGroups,
		independent: true,
		run:         func(ctx context.Context, a *grafanaAPI) error { return a.putGroup(ctx, body, action) },
	})
}

// groupCanStamp reports whether Grafana lets a group write with provenance
// sent update or delete a rule it holds with provenance stored
// (validation.CanUpdateProvenanceInRuleGroup): the same, from none, or to
// none from api or converted_prometheus.
func groupCanStamp(stored, sent models.Provenance) bool {
	return stored == sent || stored == "" || (sent == "" && (stored == "api" || stored == "converted_prometheus"))
}

// groupWriteBlocked returns a note saying why group name is not written
// when Grafana would refuse the write (409 alerting.provenanceMismatch): a
// rule it touches has a provenance the write cannot change. Such a write
// would fail the same way on every reconcile until someone acts, so it is
// not sent, and the note is given even while nothing needs writing.
func groupWriteBlocked(name string, touched []*models.ProvisionedAlertRule, sent models.Provenance) (string, bool) {
	var ours, others []string
	for _, rule := range touched {
		if groupCanStamp(rule.Provenance, sent) {
			continue
		}
		desc := fmt.Sprintf("%s %q (provenance %q)", rule.UID, s(rule.Title), rule.Provenance)
		if isManagedRule(rule) {
			ours = append(ours, desc)
		} else {
			others = append(others, desc)
		}
	}
	if len(ours) == 0 && len(others) == 0 {
		return "", false
	}
	var parts []string
	if len(ours) > 0 {
		parts = append(parts, fmt.Sprintf("healthrouter's rules %s (from Grafana's provisioning files: to let healthrouter manage them, "+
			"remove them from those files and delete them in Grafana, and healthrouter re-creates them)", strings.Join(ours, ", ")))
	}
	if len(others) > 0 {
		parts = append(parts, fmt.Sprintf("someone else's rules %s (move them to a group of their own outside healthrouter's folder)",
			strings.Join(others, ", ")))
	}
	return fmt.Sprintf("rule group %s cannot be written: Grafana refuses a group write that would change the provenance of %s",
		name, strings.Join(parts, " and of ")), true
}

// restampNotes names the rules that are not healthrouter's whose provenance
// a write of group name changes: Grafana stamps sent on them too, and with
// provenance api its UI no longer lets anyone edit them.
func restampNotes(name string, touched []*models.ProvisionedAlertRule, sent models.Provenance) []string {
	byFrom := map[string][]string{}
	for _, rule := range touched {
		if isManagedRule(rule) || rule.Provenance == sent {
			continue
		}
		from := string(rule.Provenance)
		byFrom[from] = append(byFrom[from], fmt.Sprintf("%s %q", rule.UID, s(rule.Title)))
	}
	var notes []string
	for _, from := range slices.Sorted(maps.Keys(byFrom)) {
		n := fmt.Sprintf("writing rule group %s changes the provenance of someone else's rules %s from %q to %q: "+
			"Grafana stamps it on every rule of a group it writes", name, strings.Join(byFrom[from], ", "), from, sent)
		if sent != "" {
			n += "; Grafana's UI then no longer lets anyone edit them (move them to a group outside healthrouter's folder to avoid it)"
		}
		notes = append(notes, n)
	}
	return notes
}

// prunePlan plans the removal of healthrouter's rules from the groups no
// desired group names, as pruneDecision allows: the group is deleted, or
// rewritten without them when it also holds someone else's rules. Rules
// that are desired elsewhere move with their desired group's write.
func (r *Reconciler) prunePlan(p *Plan, d *desiredState, snap *snapshot, desiredUIDs map[string]bool, now time.Time) {
	desiredNames := map[string]bool{}
	for _, g := range d.groups {
		desiredNames[g.name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(snap.groups)) {
		if desiredNames[name] {
			continue
		}
		have := snap.groups[name]
		var leftovers, others []*models.ProvisionedAlertRule
		for _, rule := range have.Rules {
			switch {
			case desiredUIDs[rule.UID]:
				// moves to its desired group with that group's write
			case isManagedRule(rule):
				leftovers = append(leftovers, rule)
			default:
				others = append(others, rule)
			}
		}
		if len(leftovers) == 0 {
			continue
		}
		region := leftovers[0].Labels["region"]
		if region == "" {
			region = name
		}
		reason, remove := r.pruneDecision(region, d, now)
		if !remove {
			if reason != "" {
				p.Notes = append(p.Notes, fmt.Sprintf("keeping rule group %s: %s", name, reason))
			}
			continue
		}
		if blocked, ok := groupWriteBlocked(name, have.Rules, r.b.provenance); ok {
			p.Notes = append(p.Notes, blocked)
			continue
		}
		p.Notes = append(p.Notes, restampNotes(name, others, r.b.provenance)...)
		if len(others) == 0 {
			p.add(op{
				change:      Change{Kind: kindRuleGroup, Action: actionDelete, Name: name, Details: []string{reason}},
				phase:       phasePrune,
				independent: true,
				run:         func(ctx context.Context, a *grafanaAPI) error { return a.deleteGroup(ctx, name) },
			})
			continue
		}
		body := &models.AlertRuleGroup{Title: name, FolderUID: d.folderUID, Interval: have.Interval, Rules: others}
		details := []string{reason}
		for _, rule := range leftovers {
			details = append(details, fmt.Sprintf("- rule %s %q", rule.UID, s(rule.Title)))
		}
		p.add(op{
			change:      Change{Kind: kindRuleGroup, Action: actionUpdate, Name: name, Details: details},
			phase:       phasePrune,
			independent: true,
			run:         func(ctx context.Context, a *grafanaAPI) error { return a.putGroup(ctx, body, actionUpdate) },
		})
	}
}

// pruneDecision says whether healthrouter's rules for a region no desired
// group covers are removed, and why.
func (r *Reconciler) pruneDecision(region string, d *desiredState, now time.Time) (reason string, remove bool) {
	g := r.b.g
	if reg, ok := d.stale[region]; ok {
		return fmt.Sprintf("region %s last seen %s (%s ago), pruned after %s",
			region, reg.LastSeen.UTC().Format(time.RFC3339), roundAge(now.Sub(reg.LastSeen)), promDuration(g.PruneAfter.D())), true
	}
	if _, ok := d.regions[region]; ok {
		return fmt.Sprintf("rules no longer generated for region %s", region), true
	}
	if !g.Prune {
		return "", false
	}
	up := now.Sub(r.started)
	if up >= g.PruneAfter.D() {
		return fmt.Sprintf("region %s not seen since healthrouter started %s ago, pruned after %s",
			region, roundAge(up), promDuration(g.PruneAfter.D())), true
	}
	// A note, repeated every reconcile: its words stay the same, so it is
	// logged as a warning once.
	return fmt.Sprintf("region %s not seen since healthrouter started at %s; pruned once it has run %s",
		region, r.started.UTC().Format(time.RFC3339), promDuration(g.PruneAfter.D())), false
}

func roundAge(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return promDuration(d.Round(time.Hour))
	case d >= time.Minute:
		return promDuration(d.Round(time.Minute))
	}
	return promDuration(d.Round(time.Second))
}
