package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// Environment variables that carry secrets.
const (
	EnvIngestTokens      = "HEALTHROUTER_INGEST_TOKENS"
	EnvAdminToken        = "HEALTHROUTER_ADMIN_TOKEN"
	EnvGrafanaToken      = "HEALTHROUTER_GRAFANA_TOKEN"
	EnvPagerDutyAPIToken = "HEALTHROUTER_PAGERDUTY_API_TOKEN"
)

// maxConfigBytes bounds the config file; anything larger is a mistake.
const maxConfigBytes = 4 << 20

// Problem is one thing wrong with a configuration, located by its key.
type Problem struct {
	Key     string // dotted path, e.g. engine.flap.high
	Line    int    // 0 when unknown
	Message string
	// ServerOnly marks a problem only the serving process meets: a TLS or
	// token file it cannot read, a token too short. Tools that read the
	// same file elsewhere (export, plan, replay) need none of them.
	ServerOnly bool
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s (line %d): %s", p.Key, p.Line, p.Message)
	}
	return p.Key + ": " + p.Message
}

// Problems is every problem found; as an error it prints one per line.
type Problems []Problem

// ForTools leaves out the problems only the server meets.
func (ps Problems) ForTools() Problems {
	var out Problems
	for _, p := range ps {
		if !p.ServerOnly {
			out = append(out, p)
		}
	}
	return out
}

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Getenv looks up an environment variable; tests pass their own.
type Getenv func(string) string

// Override changes a configuration after the file is read and before it is
// validated, as command-line flags do.
type Override func(*Config)

// Load reads the file at path (the embedded default when path is empty),
// applies the overrides and the environment, and validates. The returned
// error is Problems when the configuration is wrong, listing everything at
// once; the Config is then returned too, for reporting what else it lacks.
func Load(path string, getenv Getenv, overrides ...Override) (*Config, error) {
	var data []byte
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open config: %w", err)
		}
		defer f.Close()
		data, err = readBounded(f, maxConfigBytes)
		if err != nil {
			return nil, fmt.Errorf("read config %s: %w", path, err)
		}
	}
	return Parse(data, getenv, overrides...)
}

func readBounded(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// Parse is Load on bytes already read.
func Parse(data []byte, getenv Getenv, overrides ...Override) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg := Default()
	var probs Problems
	var lines map[string]int // where each key of the file is

	if len(bytes.TrimSpace(data)) > 0 {
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			return nil, Problems{{Key: "(file)", Message: yamlMessage(err)}}
		}
		if len(root.Content) > 0 {
			doc := root.Content[0]
			if doc.Kind != yaml.MappingNode {
				return nil, Problems{{Key: "(file)", Line: doc.Line, Message: "the top level must be a mapping of keys"}}
			}
			// A present section starts from its defaults; an absent or
			// empty one (grafana:) stays off.
			if n := child(doc, "grafana"); n != nil && !isNull(n) {
				g := defaultGrafana()
				cfg.Grafana = &g
			}
			if n := child(doc, "pagerduty"); n != nil && !isNull(n) {
				p := defaultPagerDuty()
				cfg.PagerDuty = &p
			}
			d := nodeDecoder{budget: maxNodes, lines: map[string]int{}}
			d.decode(doc, reflect.ValueOf(cfg).Elem(), "")
			probs, lines = d.ps, d.lines
		}
	}
	cfg.normalize()
	fromFile := flatten(cfg)
	for _, o := range overrides {
		o(cfg)
	}
	cfg.normalize()
	probs = append(probs, cfg.applyEnv(getenv)...)
	final := flatten(cfg)
	// A value that did not decode kept its default; what validation says
	// about that default would only repeat the problem.
	reported := make(map[string]bool, len(probs))
	for _, p := range probs {
		reported[p.Key] = true
	}
	for _, p := range cfg.Validate() {
		if !reported[p.Key] {
			probs = append(probs, p)
		}
	}
	for i := range probs {
		p := &probs[i]
		if p.Line > 0 {
			continue
		}
		// The file's line of the key, or of the nearest key above it that
		// the file has (a list item without the key at fault), unless a
		// flag or the environment set the value since: the line would
		// then point at what is not the problem.
		for key := p.Key; key != ""; key = parentKey(key) {
			if line, ok := lines[key]; ok {
				if sameUnder(fromFile, final, key) {
					p.Line = line
				}
				break
			}
		}
	}
	if len(probs) > 0 {
		sort.SliceStable(probs, func(i, j int) bool { return probs[i].Key < probs[j].Key })
		return cfg, probs
	}
	return cfg, nil
}

func yamlMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

func child(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// maxNodes bounds the values one file may expand to: aliases can make a
// small file name a huge tree.
const maxNodes = 1 << 17

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// nodeDecoder decodes a YAML tree into the config types one value at a
// time, beside the Go types, so that a bad value, a typo in a key or a key
// given twice is reported with its dotted key and line, and decoding goes
// on: a wrong value keeps its default and hides nothing after it.
type nodeDecoder struct {
	ps     Problems
	budget int            // values left to decode
	lines  map[string]int // each key's line: its name's, or a list item's
}

func (d *nodeDecoder) add(key string, n *yaml.Node, msg string) {
	d.ps = append(d.ps, Problem{Key: key, Line: n.Line, Message: msg})
}

// spend counts one value decoded, and reports once when there are too many.
func (d *nodeDecoder) spend(key string, n *yaml.Node) bool {
	if d.budget--; d.budget < 0 {
		if d.budget == -1 {
			d.add(key, n, fmt.Sprintf("the file expands to more than %d values (aliases?)", maxNodes))
		}
		return false
	}
	return true
}

// decode sets v from n. key is v's dotted path.
func (d *nodeDecoder) decode(n *yaml.Node, v reflect.Value, key string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if !d.spend(key, n) {
		return
	}
	if _, ok := d.lines[key]; !ok && key != "" {
		d.lines[key] = n.Line
	}
	if isNull(n) {
		// key: with no value keeps the default; an optional section
		// (a pointer) is then off.
		if v.Kind() == reflect.Pointer {
			v.SetZero()
		}
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		// Duration, Bytes: decoded into a copy so a bad value keeps the
		// default.
		tmp := reflect.New(v.Type())
		tmp.Elem().Set(v)
		if err := n.Decode(tmp.Interface()); err != nil {
			d.add(key, n, typeMessage(err))
			return
		}
		v.Set(tmp.Elem())
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), key)
	case reflect.Struct:
		d.decodeStruct(n, v, key)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.add(key, n, "want a list, not "+kindName(n))
			return
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, out.Index(i), key+"["+strconv.Itoa(i)+"]")
		}
		v.Set(out)
	case reflect.Map:
		d.decodeMap(n, v, key)
	default:
		d.decodeScalar(n, v, key)
	}
}

func (d *nodeDecoder) decodeStruct(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		d.add(key, n, "want a mapping of keys, not "+kindName(n))
		return
	}
	d.structFields(n, v, key, map[string]int{}, true)
}

// structFields decodes the keys of mapping n into the struct v; seen holds
// the keys already set, with their lines. A key from a merge (own false)
// does not replace one written in the mapping.
func (d *nodeDecoder) structFields(n *yaml.Node, v reflect.Value, key string, seen map[string]int, own bool) {
	fields := yamlFields(v.Type())
	d.eachPair(n, key, func(k, val *yaml.Node) {
		if k.ShortTag() == "!!merge" {
			// <<: *defaults, or a list of them: their keys count as this
			// mapping's, after the ones written in it.
			for _, m := range mergeSources(val) {
				if m.Kind != yaml.MappingNode {
					d.add(key, m, "<< merges a mapping, not "+kindName(m))
					continue
				}
				if !d.spend(key, m) {
					return
				}
				d.structFields(m, v, key, seen, false)
			}
			return
		}
		fkey := join(key, k.Value)
		i, ok := fields[k.Value]
		if !ok {
			d.add(fkey, k, "unknown key"+suggest(k.Value, fields))
			return
		}
		if first, dup := seen[k.Value]; dup {
			if own {
				d.add(fkey, k, fmt.Sprintf("given twice (first on line %d)", first))
			}
			return
		}
		seen[k.Value] = k.Line
		d.lines[fkey] = k.Line
		d.decode(val, v.Field(i), fkey)
	})
}

// yamlFields maps a struct's YAML keys to its field indexes.
func yamlFields(t reflect.Type) map[string]int {
	fields := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			fields[name] = i
		}
	}
	return fields
}

// yamlName is a field's key in the file, "" for a field the file cannot set.
func yamlName(f reflect.StructField) string {
	name := strings.Split(f.Tag.Get("yaml"), ",")[0]
	if name == "-" {
		return ""
	}
	return name
}

// eachPair calls f for each key and value of the mapping n, merge keys
// last so that keys written in the mapping itself win.
func (d *nodeDecoder) eachPair(n *yaml.Node, key string, f func(k, v *yaml.Node)) {
	var merges [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.add(key, k, "keys must be plain names")
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, [2]*yaml.Node{k, val})
			continue
		}
		f(k, val)
	}
	for _, m := range merges {
		f(m[0], m[1])
	}
}

// mergeSources are the mappings a merge key names.
func mergeSources(n *yaml.Node) []*yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.SequenceNode {
		var out []*yaml.Node
		for _, item := range n.Content {
			out = append(out, mergeSources(item)...)
		}
		return out
	}
	return []*yaml.Node{n}
}

func (d *nodeDecoder) decodeMap(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		d.add(key, n, "want a mapping, not "+kindName(n))
		return
	}
	t := v.Type()
	out := reflect.MakeMapWithSize(t, len(n.Content)/2)
	seen := map[string]int{}
	d.eachPair(n, key, func(k, val *yaml.Node) {
		if k.ShortTag() == "!!merge" {
			for _, m := range mergeSources(val) {
				if !d.spend(key, m) {
					return
				}
				if m.Kind == yaml.MappingNode {
					d.eachPair(m, key, func(k, val *yaml.Node) { d.mapEntry(k, val, out, seen, key, false) })
				}
			}
			return
		}
		d.mapEntry(k, val, out, seen, key, true)
	})
	v.Set(out)
}

// mapEntry decodes one entry into out; an entry from a merge does not
// replace one written in the mapping.
func (d *nodeDecoder) mapEntry(k, val *yaml.Node, out reflect.Value, seen map[string]int, key string, own bool) {
	ekey := join(key, k.Value)
	if first, dup := seen[k.Value]; dup {
		if own {
			d.add(ekey, k, fmt.Sprintf("given twice (first on line %d)", first))
		}
		return
	}
	seen[k.Value] = k.Line
	d.lines[ekey] = k.Line
	elem := reflect.New(out.Type().Elem()).Elem()
	d.decode(val, elem, ekey)
	out.SetMapIndex(reflect.ValueOf(k.Value).Convert(out.Type().Key()), elem)
}

func (d *nodeDecoder) decodeScalar(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.ScalarNode {
		d.add(key, n, "want a single value, not "+kindName(n))
		return
	}
	if isInt(v.Kind()) && n.ShortTag() != "!!int" {
		// yaml would truncate 1.5 to 1.
		d.add(key, n, scalarMessage(v.Kind(), n))
		return
	}
	tmp := reflect.New(v.Type())
	if err := n.Decode(tmp.Interface()); err != nil {
		d.add(key, n, scalarMessage(v.Kind(), n))
		return
	}
	v.Set(tmp.Elem())
}

func isInt(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// scalarMessage says what a value of kind k looks like.
func scalarMessage(k reflect.Kind, n *yaml.Node) string {
	want := "a value of type " + k.String()
	switch {
	case isInt(k) && n.ShortTag() == "!!int":
		want = "a whole number in range"
	case isInt(k):
		want = "a whole number"
	case k == reflect.Float32, k == reflect.Float64:
		want = "a number"
	case k == reflect.Bool:
		want = "true or false"
	case k == reflect.String:
		want = "text"
	}
	return fmt.Sprintf("want %s, got %q", want, n.Value)
}

// typeMessage is the message of a value's own UnmarshalYAML.
func typeMessage(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		return strings.Join(te.Errors, "; ")
	}
	return yamlMessage(err)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return fmt.Sprintf("%q", n.Value)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest names a known key that differs from the typo by little.
func suggest(got string, known map[string]int) string {
	best, bestD := "", 3
	for k := range known {
		if d := editDistance(got, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// normalize accepts the spellings users write for the same thing: the
// PagerDuty events URL with or without the /v2/enqueue the client adds, and
// severities and levels in any case. Alert labels carry the canonical
// lower-case names, and Grafana matches route labels exactly, so a route
// on "Warning" would page directly but never through Grafana. Values that
// are no severity or level are left for Validate to report.
func (c *Config) normalize() {
	for i := range c.Checks {
		c.Checks[i].Severity = canonicalSeverity(c.Checks[i].Severity)
	}
	if p := c.PagerDuty; p != nil {
		p.EventsURL = strings.TrimSuffix(strings.TrimRight(p.EventsURL, "/"), "/v2/enqueue")
		p.APIURL = strings.TrimRight(p.APIURL, "/")
		for _, r := range p.Routes {
			if v, ok := r.Match["severity"]; ok {
				r.Match["severity"] = canonicalSeverity(v)
			}
			if v, ok := r.Match["level"]; ok {
				r.Match["level"] = canonicalLevel(v)
			}
		}
	}
	if c.Grafana != nil {
		c.Grafana.URL = strings.TrimRight(c.Grafana.URL, "/")
	}
}

// applyEnv reads the secrets from their files and the environment.
func (c *Config) applyEnv(getenv Getenv) Problems {
	var ps Problems
	if c.Auth.IngestTokensFile != "" {
		toks, err := readTokenFile(c.Auth.IngestTokensFile)
		if err != nil {
			ps = append(ps, Problem{Key: "auth.ingest_tokens_file", Message: err.Error(), ServerOnly: true})
		}
		c.Auth.IngestTokens = append(c.Auth.IngestTokens, toks...)
		c.Auth.fileTokens = len(toks)
	}
	for _, t := range strings.Split(getenv(EnvIngestTokens), ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.Auth.IngestTokens = append(c.Auth.IngestTokens, Secret(t))
		}
	}
	if c.Auth.AdminTokenFile != "" {
		toks, err := readTokenFile(c.Auth.AdminTokenFile)
		switch {
		case err != nil:
			ps = append(ps, Problem{Key: "auth.admin_token_file", Message: err.Error(), ServerOnly: true})
		case len(toks) != 1:
			ps = append(ps, Problem{Key: "auth.admin_token_file", Message: "must hold exactly one token", ServerOnly: true})
		default:
			c.Auth.AdminToken = toks[0]
		}
	}
	if t := strings.TrimSpace(getenv(EnvAdminToken)); t != "" {
		c.Auth.AdminToken = Secret(t)
	}
	if c.Grafana != nil {
		c.Grafana.Token = Secret(strings.TrimSpace(getenv(EnvGrafanaToken)))
	}
	if c.PagerDuty != nil {
		c.PagerDuty.APIToken = Secret(strings.TrimSpace(getenv(EnvPagerDutyAPIToken)))
		c.PagerDuty.Keys = map[string]Secret{}
		for name, env := range c.PagerDuty.RoutingKeys {
			if v := strings.TrimSpace(getenv(env)); v != "" {
				c.PagerDuty.Keys[name] = Secret(v)
			}
		}
	}
	return ps
}

// canonicalSeverity is s as alert labels spell it (critical, error,
// warning, info), or s unchanged when it is no severity.
func canonicalSeverity(s string) string {
	if sev, ok := health.ParseSeverity([]byte(strings.TrimSpace(s))); ok {
		return sev.String()
	}
	return s
}

// canonicalLevel is l as alert labels spell it (host, region), or l
// unchanged when it is no level.
func canonicalLevel(l string) string {
	var lv health.Level
	if lv.UnmarshalText([]byte(strings.ToLower(strings.TrimSpace(l)))) == nil {
		return lv.String()
	}
	return l
}

func readTokenFile(path string) ([]Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := readBounded(f, 1<<20)
	if err != nil {
		return nil, err
	}
	var toks []Secret
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		toks = append(toks, Secret(line))
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("%s holds no token", path)
	}
	return toks, nil
}

// MissingSecrets lists the secrets that commands talking to Grafana or
// PagerDuty need and the environment did not provide. Export and plan
// without a server can run without them, so Load does not insist.
func (c *Config) MissingSecrets() Problems {
	var ps Problems
	if c.Grafana != nil && c.Grafana.Token == "" {
		ps = append(ps, Problem{Key: "grafana", Message: EnvGrafanaToken + " is not set"})
	}
	if c.PagerDuty != nil {
		names := make([]string, 0, len(c.PagerDuty.RoutingKeys))
		for name := range c.PagerDuty.RoutingKeys {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if _, ok := c.PagerDuty.Keys[name]; !ok {
				ps = append(ps, Problem{Key: "pagerduty.routing_keys." + name,
					Message: c.PagerDuty.RoutingKeys[name] + " is not set"})
			}
		}
	}
	return ps
}

// flatten lists every value of c by dotted key, as the file names them,
// to tell which ones flags and the environment changed.
func flatten(c *Config) map[string]any {
	out := map[string]any{}
	flattenValue(reflect.ValueOf(c).Elem(), "", out)
	return out
}

func flattenValue(v reflect.Value, key string, out map[string]any) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			flattenValue(v.Elem(), key, out)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if name := yamlName(t.Field(i)); name != "" {
				flattenValue(v.Field(i), join(key, name), out)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			flattenValue(v.Index(i), key+"["+strconv.Itoa(i)+"]", out)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			flattenValue(v.MapIndex(k), join(key, fmt.Sprint(k.Interface())), out)
		}
	default:
		out[key] = v.Interface()
	}
}

// parentKey is the key one level above key ("checks[0]" for
// "checks[0].match", "checks" for "checks[0]"), "" at the top.
func parentKey(key string) string {
	i := strings.LastIndexAny(key, ".[")
	if i <= 0 {
		return ""
	}
	return key[:i]
}

// sameUnder reports whether key and every key under it hold the same
// values in a and b.
func sameUnder(a, b map[string]any, key string) bool {
	under := func(k string) bool {
		return k == key || strings.HasPrefix(k, key+".") || strings.HasPrefix(k, key+"[")
	}
	for k, av := range a {
		if under(k) {
			if bv, ok := b[k]; !ok || !reflect.DeepEqual(av, bv) {
				return false
			}
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && under(k) {
			return false
		}
	}
	return true
}
