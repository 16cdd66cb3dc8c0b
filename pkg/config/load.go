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
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s (line %d): %s", p.Key, p.Line, p.Message)
	}
	return p.Key + ": " + p.Message
}

// Problems is every problem found; as an error it prints one per line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Getenv looks up an environment variable; tests pass their own.
type Getenv func(string) string

// Load reads the file at path (the embedded default when path is empty),
// applies the environment, and validates. The returned error is Problems
// when the configuration is wrong, listing everything at once.
func Load(path string, getenv Getenv) (*Config, error) {
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
	return Parse(data, getenv)
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
func Parse(data []byte, getenv Getenv) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg := Default()
	var probs Problems

	if len(bytes.TrimSpace(data)) > 0 {
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			return nil, Problems{{Key: "(file)", Message: yamlMessage(err)}}
		}
		if len(root.Content) == 0 {
			goto env
		}
		doc := root.Content[0]
		if doc.Kind != yaml.MappingNode {
			return nil, Problems{{Key: "(file)", Line: doc.Line, Message: "the top level must be a mapping of keys"}}
		}
		probs = append(probs, unknownKeys(doc, reflect.TypeOf(Config{}), "")...)
		probs = append(probs, decodeInto(doc, cfg)...)
		if n := child(doc, "grafana"); n != nil && n.Kind != yaml.ScalarNode {
			g := defaultGrafana()
			probs = append(probs, decodeInto(n, &g)...)
			cfg.Grafana = &g
		}
		if n := child(doc, "pagerduty"); n != nil && n.Kind != yaml.ScalarNode {
			p := defaultPagerDuty()
			probs = append(probs, decodeInto(n, &p)...)
			cfg.PagerDuty = &p
		}
	}
env:
	cfg.normalize()
	probs = append(probs, cfg.applyEnv(getenv)...)
	probs = append(probs, cfg.Validate()...)
	if len(probs) > 0 {
		sort.SliceStable(probs, func(i, j int) bool { return probs[i].Key < probs[j].Key })
		return cfg, probs
	}
	return cfg, nil
}

// decodeInto decodes n over the defaults already in out, turning yaml's
// type errors into keyed problems.
func decodeInto(n *yaml.Node, out any) Problems {
	err := n.Decode(out)
	if err == nil {
		return nil
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var ps Problems
		for _, e := range te.Errors {
			ps = append(ps, Problem{Key: "(value)", Message: e})
		}
		return ps
	}
	return Problems{{Key: "(value)", Message: err.Error()}}
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

// unknownKeys walks the YAML beside the Go type and reports keys the type
// does not have, with their full path, so a typo is named precisely.
func unknownKeys(n *yaml.Node, t reflect.Type, path string) Problems {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var ps Problems
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // the decoder reports the type mismatch
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "" || name == "-" {
				continue
			}
			fields[name] = f.Type
		}
		if _, custom := reflect.New(t).Interface().(yaml.Unmarshaler); custom {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := join(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				ps = append(ps, Problem{Key: key, Line: k.Line, Message: "unknown key" + suggest(k.Value, fields)})
				continue
			}
			ps = append(ps, unknownKeys(v, ft, key)...)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, item := range n.Content {
			ps = append(ps, unknownKeys(item, t.Elem(), path+"["+strconv.Itoa(i)+"]")...)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			ps = append(ps, unknownKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))...)
		}
	}
	return ps
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest names a known key that differs from the typo by little.
func suggest(got string, known map[string]reflect.Type) string {
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
// PagerDuty events URL with or without the /v2/enqueue the client adds.
func (c *Config) normalize() {
	if p := c.PagerDuty; p != nil {
		p.EventsURL = strings.TrimSuffix(strings.TrimRight(p.EventsURL, "/"), "/v2/enqueue")
		p.APIURL = strings.TrimRight(p.APIURL, "/")
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
			ps = append(ps, Problem{Key: "auth.ingest_tokens_file", Message: err.Error()})
		}
		c.Auth.IngestTokens = append(c.Auth.IngestTokens, toks...)
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
			ps = append(ps, Problem{Key: "auth.admin_token_file", Message: err.Error()})
		case len(toks) != 1:
			ps = append(ps, Problem{Key: "auth.admin_token_file", Message: "must hold exactly one token"})
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
