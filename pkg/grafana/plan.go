package grafana

import (
	"context"
	"fmt"
	"strings"
)

// Actions a change can take.
const (
	actionCreate = "create"
	actionUpdate = "update"
	actionDelete = "delete"
)

// Change is one object a reconcile creates, updates or deletes.
type Change struct {
	Kind   string // folder, contact_point, rule_group, policy
	Action string // create, update, delete
	Name   string
	// Details say what differs, one line each. They never hold a secret.
	Details []string
}

// Plan is the difference between what Grafana holds and what healthrouter
// wants, in the order it is applied. Apply returns the plan it carried out.
type Plan struct {
	Changes []Change
	// Notes are things an operator should know that are not changes, such
	// as a routing key missing from the environment.
	Notes []string

	ops []op
	// planned: Grafana was read and the plan made (a reconcile that failed
	// before has no notes to tell).
	planned bool
	// rulesStand: healthrouter's folder held some of its region rules when
	// read.
	rulesStand bool
}

// phases order the writes so that nothing refers to an object that does not
// exist yet: receivers before the rules and routes that name them, and
// deletions of receivers after everything that named them is gone.
const (
	phaseFolder = iota
	phaseContactPoints
	phasePolicy
	phaseGroups
	phasePrune
	phasePolicyCleanup
	phaseContactPointCleanup
)

type op struct {
	change Change
	phase  int
	// independent ops of one phase may fail alone: a rule group Grafana
	// rejects must not keep every other region from being provisioned.
	independent bool
	// precheck fails the whole apply before any write, for what is known to
	// be impossible (a contact point to create with no key).
	precheck func() error
	run      func(ctx context.Context, a *grafanaAPI) error
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool { return p == nil || len(p.Changes) == 0 }

func (p *Plan) add(o op) {
	p.ops = append(p.ops, o)
	p.Changes = append(p.Changes, o.change)
}

// String renders the plan for a human: a summary line, one line per change
// (+ create, ~ update, - delete) with indented details, then notes. The
// output depends only on the plan, so it is stable across runs.
func (p *Plan) String() string {
	return p.render("No changes: Grafana matches the desired state.\n",
		"Grafana plan: %d to create, %d to update, %d to delete.\n")
}

// Applied renders a plan Apply carried out, in the same form: what was
// written, not what is pending.
func (p *Plan) Applied() string {
	return p.render("No changes: Grafana already matched the desired state.\n",
		"Applied to Grafana: %d created, %d updated, %d deleted.\n")
}

func (p *Plan) render(empty, summary string) string {
	var b strings.Builder
	if p.Empty() {
		b.WriteString(empty)
	} else {
		var n [3]int
		for _, c := range p.Changes {
			switch c.Action {
			case actionCreate:
				n[0]++
			case actionUpdate:
				n[1]++
			case actionDelete:
				n[2]++
			}
		}
		fmt.Fprintf(&b, summary, n[0], n[1], n[2])
		for _, c := range p.Changes {
			sign := "~"
			switch c.Action {
			case actionCreate:
				sign = "+"
			case actionDelete:
				sign = "-"
			}
			fmt.Fprintf(&b, "%s %s %s\n", sign, strings.ReplaceAll(c.Kind, "_", " "), c.Name)
			for _, d := range c.Details {
				fmt.Fprintf(&b, "    %s\n", d)
			}
		}
	}
	for _, n := range p.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}
