package grafana

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"

	"github.com/grafana/grafana-openapi-client-go/models"
)

// policyTree is Grafana's notification policy tree as healthrouter reads and
// writes it. It decides which of the root's routes are healthrouter's, and
// carries everything else through a write as Grafana sent it.
//
// Grafana's answer can hold what the generated client cannot decode: a route
// written through Grafana's Alertmanager configuration API, or imported from
// an Alertmanager config, has `matchers` as a list of strings (team="b"),
// where the client's models.Route expects objects. So only what healthrouter
// needs is parsed, the root's provenance and the matchers of its first-level
// routes; every route and every root field stays raw JSON, and unknown or
// future fields survive a write.
type policyTree struct {
	// fields are the root's fields but routes and provenance, as sent.
	fields map[string]json.RawMessage
	// routes are the root's child routes in order, each as sent.
	routes []json.RawMessage
	// provenance belongs to the whole tree. Grafana sets it from the
	// request's header and never takes it from a body.
	provenance models.Provenance
}

// Keys of a route's JSON object that healthrouter reads or rewrites.
const (
	keyRoutes     = "routes"
	keyProvenance = "provenance"
)

// parsePolicyTree reads the tree Grafana answered with.
func parsePolicyTree(data []byte) (*policyTree, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("policy tree: %w", err)
	}
	if fields == nil {
		return nil, errors.New("policy tree: null, want a route object")
	}
	t := &policyTree{fields: fields}
	if raw, ok := fields[keyRoutes]; ok {
		if err := json.Unmarshal(raw, &t.routes); err != nil {
			return nil, fmt.Errorf("policy tree: routes: %w", err)
		}
		for i, r := range t.routes {
			if !isJSONObject(r) {
				return nil, fmt.Errorf("policy tree: routes[%d] is %s, want a route object", i, truncateUTF8(string(r), 40))
			}
		}
		delete(fields, keyRoutes)
	}
	if raw, ok := fields[keyProvenance]; ok {
		var p *string
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("policy tree: provenance: %w", err)
		}
		if p != nil {
			t.provenance = models.Provenance(*p)
		}
		delete(fields, keyProvenance)
	}
	return t, nil
}

func isJSONObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// MarshalJSON writes the tree for a PUT: the root's fields and routes as
// held, without provenance, which Grafana takes from the request header.
func (t *policyTree) MarshalJSON() ([]byte, error) {
	out := make(map[string]json.RawMessage, len(t.fields)+1)
	for k, v := range t.fields {
		out[k] = v
	}
	if len(t.routes) > 0 {
		routes, err := json.Marshal(t.routes)
		if err != nil {
			return nil, err
		}
		out[keyRoutes] = routes
	}
	return json.Marshal(out)
}

// managed returns healthrouter's routes among the root's children.
func (t *policyTree) managed() []json.RawMessage {
	if t == nil {
		return nil
	}
	var out []json.RawMessage
	for _, r := range t.routes {
		if isManagedRouteJSON(r) {
			out = append(out, r)
		}
	}
	return out
}

// others returns the root's children that are not healthrouter's.
func (t *policyTree) others() []json.RawMessage {
	if t == nil {
		return nil
	}
	var out []json.RawMessage
	for _, r := range t.routes {
		if !isManagedRouteJSON(r) {
			out = append(out, r)
		}
	}
	return out
}

// managedByMatcher is healthrouter's matcher as Grafana writes a string
// matcher back (name, operator, quoted value), which is how it reads in a
// route written through the Alertmanager configuration API.
var managedByMatcher = ManagedByLabel + "=" + strconv.Quote(ManagedByValue)

// isManagedRouteJSON reports whether a route as Grafana sent it is
// healthrouter's. A route whose matchers are in a shape it does not know is
// someone else's.
func isManagedRouteJSON(raw json.RawMessage) bool {
	var head struct {
		ObjectMatchers json.RawMessage   `json:"object_matchers"`
		Match          map[string]string `json:"match"`
		Matchers       json.RawMessage   `json:"matchers"`
	}
	if json.Unmarshal(raw, &head) != nil {
		return false
	}
	r := &models.Route{Match: head.Match}
	// Each form is read on its own, so one that does not parse leaves the
	// others to decide.
	_ = json.Unmarshal(head.ObjectMatchers, &r.ObjectMatchers)
	if isManagedRoute(r) {
		return true
	}
	var strs []string
	if json.Unmarshal(head.Matchers, &strs) == nil {
		for _, m := range strs {
			if m == managedByMatcher {
				return true
			}
		}
	}
	return false
}

// withManagedRoute returns a copy of tree with healthrouter's sub-route set
// to want (first among the root's routes when it was absent, in place of
// the first of its routes when present), or removed when want is nil. Every
// other route and root field is kept as Grafana sent it.
func withManagedRoute(tree *policyTree, want *models.Route) *policyTree {
	out := &policyTree{fields: make(map[string]json.RawMessage, len(tree.fields))}
	for k, v := range tree.fields {
		out.fields[k] = v
	}
	var ours json.RawMessage
	if want != nil {
		ours = routeJSON(want)
	}
	placed := false
	for _, r := range tree.routes {
		if !isManagedRouteJSON(r) {
			out.routes = append(out.routes, r)
			continue
		}
		if ours != nil && !placed {
			out.routes = append(out.routes, ours)
			placed = true
		}
	}
	if ours != nil && !placed {
		out.routes = append([]json.RawMessage{ours}, out.routes...)
	}
	return out
}

// routeJSON encodes a route healthrouter builds.
func routeJSON(r *models.Route) json.RawMessage {
	raw, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("grafana: encoding a policy route: %v", err)) // plain data; cannot fail
	}
	return raw
}

// sameRouteJSON reports whether two routes as JSON are the same route:
// equal once the differences Grafana introduces when it stores a tree are
// taken out (key order, matcher and group_by order, empty fields left out
// or sent as null, durations written anew, provenance).
func sameRouteJSON(a, b json.RawMessage) bool {
	na, errA := normalRoute(a)
	nb, errB := normalRoute(b)
	if errA != nil || errB != nil {
		return bytes.Equal(bytes.TrimSpace(a), bytes.TrimSpace(b))
	}
	return reflect.DeepEqual(na, nb)
}

// sameOtherRoutes reports whether two trees agree on everything that is not
// healthrouter's: the root's fields and the other routes, in order.
func sameOtherRoutes(a, b *policyTree) bool {
	rootA, errA := json.Marshal(a.fields)
	rootB, errB := json.Marshal(b.fields)
	if errA != nil || errB != nil || !sameRouteJSON(rootA, rootB) {
		return false
	}
	oa, ob := a.others(), b.others()
	if len(oa) != len(ob) {
		return false
	}
	for i := range oa {
		if !sameRouteJSON(oa[i], ob[i]) {
			return false
		}
	}
	return true
}

// unorderedRouteLists are the route fields whose order Grafana does not
// keep or that mean the same in any order.
var unorderedRouteLists = map[string]bool{
	"object_matchers": true, "matchers": true, "group_by": true,
	"mute_time_intervals": true, "active_time_intervals": true,
}

// routeDurations are the route fields Grafana stores as durations and
// writes back in its own notation (1m0s reads back as 1m).
var routeDurations = map[string]bool{"group_wait": true, "group_interval": true, "repeat_interval": true}

// normalRoute decodes a route into plain JSON values in a canonical form.
func normalRoute(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return normalRouteValue(v), nil
}

func normalRouteValue(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{}
	for k, val := range m {
		if k == keyProvenance || isEmptyJSON(val) {
			continue
		}
		switch {
		case k == keyRoutes:
			if list, ok := val.([]any); ok {
				routes := make([]any, len(list))
				for i, c := range list {
					routes[i] = normalRouteValue(c)
				}
				val = routes
			}
		case unorderedRouteLists[k]:
			if list, ok := val.([]any); ok {
				val = sortedByJSON(list)
			}
		case routeDurations[k]:
			if str, ok := val.(string); ok {
				if d, ok := parseDuration(str); ok {
					val = d
				}
			}
		}
		out[k] = val
	}
	return out
}

// isEmptyJSON reports whether a JSON value is one Grafana leaves out of a
// route it writes back: null, false, "", [] or {}.
func isEmptyJSON(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

func sortedByJSON(list []any) []any {
	type keyed struct {
		key string
		v   any
	}
	ks := make([]keyed, len(list))
	for i, v := range list {
		raw, _ := json.Marshal(v) // plain JSON values: cannot fail
		ks[i] = keyed{string(raw), v}
	}
	sort.SliceStable(ks, func(i, j int) bool { return ks[i].key < ks[j].key })
	out := make([]any, len(ks))
	for i, k := range ks {
		out[i] = k.v
	}
	return out
}
