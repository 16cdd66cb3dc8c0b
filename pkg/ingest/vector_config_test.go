package ingest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// vectorDir holds the Vector pipeline users deploy.
const vectorDir = "../../vector"

// checkHTTPSink reports every way a Vector http sink configuration
// disagrees with what POST /v1/events accepts.
func checkHTTPSink(sink map[string]any) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	str := func(m map[string]any, key string) string { s, _ := m[key].(string); return s }
	sub := func(m map[string]any, key string) map[string]any { s, _ := m[key].(map[string]any); return s }

	sinkURI, err := url.Parse(str(sink, "uri"))
	if err != nil || (sinkURI.Scheme != "http" && sinkURI.Scheme != "https") || sinkURI.Host == "" {
		add("uri %q is not an absolute http(s) URL", str(sink, "uri"))
		sinkURI = nil
	} else if sinkURI.Path != EventsPath {
		add("uri path %q, want %s", sinkURI.Path, EventsPath)
	}
	if m := str(sink, "method"); m != "" && !strings.EqualFold(m, "post") {
		add("method %q, want post", m)
	}
	enc := sub(sink, "encoding")
	if codec := str(enc, "codec"); codec != "json" {
		add("encoding.codec %q, want json", codec)
	}
	if framing := sub(sink, "framing"); framing != nil {
		switch method := str(framing, "method"); method {
		case "newline_delimited":
		case "character_delimited":
			if d := str(sub(framing, "character_delimited"), "delimiter"); d != "," {
				add("framing.character_delimited.delimiter %q, want \",\" (a JSON array)", d)
			}
		default:
			add("framing.method %q, want newline_delimited or the default", method)
		}
	}
	if _, ok := sink["payload_prefix"]; ok {
		add("payload_prefix wraps the array in something healthrouter does not read")
	}
	if _, ok := sink["payload_suffix"]; ok {
		add("payload_suffix wraps the array in something healthrouter does not read")
	}
	compression := str(sink, "compression")
	if c := sub(sink, "compression"); c != nil {
		compression = str(c, "algorithm")
		if compression == "zstd" {
			// Levels past 19 use windows beyond the 8 MiB the server's
			// zstd decoder accepts (maxZstdWindow): every batch a 400.
			switch level := c["level"].(type) {
			case nil:
			case int:
				if level > 19 {
					add("compression.level %d: zstd above 19 needs more than the %d MiB window healthrouter accepts", level, maxZstdWindow>>20)
				}
			case string:
				if level != "fast" && level != "default" {
					add("compression.level %q: name a zstd level of at most 19 (healthrouter accepts windows up to %d MiB)", level, maxZstdWindow>>20)
				}
			default:
				add("compression.level %v: want a number of at most 19", level)
			}
		}
	}
	switch compression {
	case "", "none", "gzip", "zlib", "zstd", "snappy":
	default:
		add("compression %q, want none, gzip, zlib, zstd or snappy", compression)
	}
	hc := sub(sink, "healthcheck")
	if enabled, ok := hc["enabled"].(bool); ok && !enabled {
		add("healthcheck is disabled")
	}
	if u, err := url.Parse(str(hc, "uri")); str(hc, "uri") == "" || err != nil {
		add("healthcheck.uri is not set: Vector then never checks healthrouter")
	} else {
		if u.Path != HealthPath {
			add("healthcheck.uri path %q, want %s", u.Path, HealthPath)
		}
		// Checking another server than the one events go to proves
		// nothing about the sink.
		if sinkURI != nil && (u.Scheme != sinkURI.Scheme || u.Host != sinkURI.Host) {
			add("healthcheck.uri %s://%s is not the sink's %s://%s", u.Scheme, u.Host, sinkURI.Scheme, sinkURI.Host)
		}
	}
	if auth := sub(sink, "auth"); auth != nil {
		if s := str(auth, "strategy"); s != "bearer" {
			add("auth.strategy %q, want bearer", s)
		} else if tok := str(auth, "token"); !strings.HasPrefix(tok, "SECRET[") {
			add("auth.token is written in the file; use a secret backend: SECRET[backend.key]")
		}
	}
	return problems
}

// TestVectorPipelines holds every http sink in vector/*.yaml to the ingest
// contract, so the shipped pipeline and the server cannot drift apart.
func TestVectorPipelines(t *testing.T) {
	var files []string
	err := filepath.WalkDir(vectorDir, func(path string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sinks := 0
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Sources map[string]map[string]any `yaml:"sources"`
			Sinks   map[string]map[string]any `yaml:"sinks"`
		}
		if err := yaml.Unmarshal(raw, &cfg); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		// A check system pushing results gets its answer only once
		// healthrouter has them on disk: the sink must acknowledge end to
		// end, or a Vector crash loses what the pusher was told is safe.
		pushed := false
		for _, src := range cfg.Sources {
			pushed = pushed || src["type"] == "http_server"
		}
		for name, sink := range cfg.Sinks {
			if sink["type"] != "http" {
				continue
			}
			sinks++
			for _, p := range checkHTTPSink(sink) {
				t.Errorf("%s: sinks.%s: %s", file, name, p)
			}
			if ack, _ := sink["acknowledgements"].(map[string]any); pushed && ack["enabled"] != true {
				t.Errorf("%s: sinks.%s: acknowledgements.enabled must be true: an http_server source feeds the pipeline", file, name)
			}
		}
	}
	if sinks == 0 {
		t.Fatalf("no http sink in %s", vectorDir)
	}
}

func TestCheckHTTPSink(t *testing.T) {
	good := func() map[string]any {
		return map[string]any{
			"type": "http", "uri": "http://127.0.0.1:8080/v1/events", "method": "post",
			"encoding": map[string]any{"codec": "json"}, "compression": "gzip",
			"auth":        map[string]any{"strategy": "bearer", "token": "SECRET[hr.token]"},
			"healthcheck": map[string]any{"uri": "http://127.0.0.1:8080/healthz"},
		}
	}
	tests := []struct {
		name   string
		mutate func(map[string]any)
		want   string
	}{
		{"good", func(map[string]any) {}, ""},
		{"ndjson", func(s map[string]any) { s["framing"] = map[string]any{"method": "newline_delimited"} }, ""},
		{"comma framing", func(s map[string]any) {
			s["framing"] = map[string]any{"method": "character_delimited", "character_delimited": map[string]any{"delimiter": ","}}
		}, ""},
		{"compression map", func(s map[string]any) { s["compression"] = map[string]any{"algorithm": "zstd", "level": 3} }, ""},
		{"zstd level 19", func(s map[string]any) { s["compression"] = map[string]any{"algorithm": "zstd", "level": 19} }, ""},
		{"zstd level 20", func(s map[string]any) { s["compression"] = map[string]any{"algorithm": "zstd", "level": 20} },
			"compression.level 20: zstd above 19 needs more than the 8 MiB window healthrouter accepts"},
		{"zstd level best", func(s map[string]any) { s["compression"] = map[string]any{"algorithm": "zstd", "level": "best"} },
			`compression.level "best": name a zstd level of at most 19 (healthrouter accepts windows up to 8 MiB)`},
		{"zstd level fast", func(s map[string]any) { s["compression"] = map[string]any{"algorithm": "zstd", "level": "fast"} }, ""},
		{"gzip level 9", func(s map[string]any) { s["compression"] = map[string]any{"algorithm": "gzip", "level": 9} }, ""},
		{"https sink", func(s map[string]any) {
			s["uri"] = "https://hr.example.net:8443/v1/events"
			s["healthcheck"] = map[string]any{"uri": "https://hr.example.net:8443/healthz"}
		}, ""},
		{"healthcheck on another host", func(s map[string]any) { s["healthcheck"] = map[string]any{"uri": "http://127.0.0.2:8080/healthz"} },
			"healthcheck.uri http://127.0.0.2:8080 is not the sink's http://127.0.0.1:8080"},
		{"healthcheck on another port", func(s map[string]any) { s["healthcheck"] = map[string]any{"uri": "http://127.0.0.1:9090/healthz"} },
			"healthcheck.uri http://127.0.0.1:9090 is not the sink's http://127.0.0.1:8080"},
		{"healthcheck over plain http", func(s map[string]any) {
			s["uri"] = "https://127.0.0.1:8080/v1/events"
		}, "healthcheck.uri http://127.0.0.1:8080 is not the sink's https://127.0.0.1:8080"},
		{"default method", func(s map[string]any) { delete(s, "method") }, ""},
		{"wrong path", func(s map[string]any) { s["uri"] = "http://127.0.0.1:8080/v1/events/" }, `uri path "/v1/events/", want /v1/events`},
		{"relative uri", func(s map[string]any) { s["uri"] = "/v1/events" }, `uri "/v1/events" is not an absolute http(s) URL`},
		{"put", func(s map[string]any) { s["method"] = "put" }, `method "put", want post`},
		{"text codec", func(s map[string]any) { s["encoding"] = map[string]any{"codec": "text"} }, `encoding.codec "text", want json`},
		{"length framing", func(s map[string]any) { s["framing"] = map[string]any{"method": "length_delimited"} },
			`framing.method "length_delimited", want newline_delimited or the default`},
		{"pipe delimiter", func(s map[string]any) {
			s["framing"] = map[string]any{"method": "character_delimited", "character_delimited": map[string]any{"delimiter": "|"}}
		}, `framing.character_delimited.delimiter "|", want "," (a JSON array)`},
		{"brotli", func(s map[string]any) { s["compression"] = "brotli" }, `compression "brotli", want none, gzip, zlib, zstd or snappy`},
		{"payload wrapper", func(s map[string]any) { s["payload_prefix"] = `{"data":` }, "payload_prefix wraps the array in something healthrouter does not read"},
		{"no healthcheck", func(s map[string]any) { delete(s, "healthcheck") }, "healthcheck.uri is not set: Vector then never checks healthrouter"},
		{"healthcheck path", func(s map[string]any) { s["healthcheck"] = map[string]any{"uri": "http://127.0.0.1:8080/health"} },
			`healthcheck.uri path "/health", want /healthz`},
		{"literal token", func(s map[string]any) {
			s["auth"] = map[string]any{"strategy": "bearer", "token": "hunter2hunter2hunter2"}
		},
			"auth.token is written in the file; use a secret backend: SECRET[backend.key]"},
		{"basic auth", func(s map[string]any) { s["auth"] = map[string]any{"strategy": "basic"} }, `auth.strategy "basic", want bearer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := good()
			tt.mutate(sink)
			got := strings.Join(checkHTTPSink(sink), "; ")
			if got != tt.want {
				t.Errorf("problems %q\nwant     %q", got, tt.want)
			}
		})
	}
}

// TestExampleCheckScript runs vector/checks/example-check.sh and checks
// that every line is a result the remap and the decoder accept.
func TestExampleCheckScript(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	bracketed := "TCP_TARGET=[127.0.0.1]:" + fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	for _, env := range [][]string{
		{"TCP_TARGET=127.0.0.1:1"},
		{bracketed, `TCP_CHECK=tcp "quoted"`},
		{"TCP_TARGET=127.0.0.1:1", "DISK_WARN=0", "DISK_CRIT=0", "LOAD_WARN_PER_CPU=0", "LOAD_CRIT_PER_CPU=0"},
	} {
		cmd := exec.Command(sh, filepath.Join(vectorDir, "checks", "example-check.sh"))
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("example-check.sh %v: %v", env, err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) < 2 {
			t.Fatalf("example-check.sh printed %q, want a result per check", out)
		}
		for _, line := range lines {
			var r struct {
				Check, Status, Output, Severity string
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			if _, ok := health.ParseStatus([]byte(r.Status)); !ok || r.Check == "" || r.Output == "" {
				t.Errorf("line %q is not a complete result", line)
			}
			if r.Severity != "" {
				if _, ok := health.ParseSeverity([]byte(r.Severity)); !ok {
					t.Errorf("line %q: severity %q", line, r.Severity)
				}
			}
		}
		if env[0] == bracketed && !strings.Contains(string(out), `{"check":"tcp \"quoted\"","status":"passing"`) {
			t.Errorf("a quoted check name, or a bracketed address that accepts connections: %s", out)
		}
		if env[len(env)-1] == "LOAD_CRIT_PER_CPU=0" && !strings.Contains(string(out), `"check":"disk_root","status":"critical"`) {
			t.Errorf("with thresholds at 0 the disk check does not fail: %s", out)
		}
	}
}

// vrlReserved are the identifiers VRL's lexer reserves (vectordotdev/vrl,
// src/parser/lex.rs): a program naming a variable so does not compile, and
// Vector refuses to start.
var vrlReserved = []string{"array", "bool", "boolean", "break", "continue", "do", "emit", "float",
	"for", "forall", "foreach", "all", "each", "any", "try", "undefined", "int", "integer", "iter",
	"object", "regex", "string", "traverse", "timestamp", "duration", "unless", "walk", "while", "loop"}

var (
	vrlString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	vrlIdent  = regexp.MustCompile(`(^|[^.\w])([a-z_]\w*)(\s*!?\s*\()?`)
)

// vrlReservedNames returns the reserved words a VRL program uses outside
// strings, paths and function calls: as variables.
func vrlReservedNames(program string) []string {
	var found []string
	for _, line := range strings.Split(vrlString.ReplaceAllString(program, `""`), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, m := range vrlIdent.FindAllStringSubmatch(line, -1) {
			if m[3] == "" && slices.Contains(vrlReserved, m[2]) {
				found = append(found, m[2])
			}
		}
	}
	return found
}

func TestVRLReservedNames(t *testing.T) {
	tests := []struct {
		program string
		want    []string
	}{
		{"timestamp = .timestamp\nif timestamp == null { timestamp = now() }", []string{"timestamp", "timestamp", "timestamp"}},
		{`ts = .timestamp` + "\n" + `. = {"timestamp": ts, "string": string!(.s)} # timestamp`, nil},
		{"x = int(.a) ?? float(.a) ?? object!(.b)", nil},
		{"string = 1", []string{"string"}},
	}
	for _, tt := range tests {
		if got := vrlReservedNames(tt.program); !slices.Equal(got, tt.want) {
			t.Errorf("%q: %v, want %v", tt.program, got, tt.want)
		}
	}
}

// Every remap program in vector/ compiles as far as VRL's reserved words
// go: nothing here runs Vector, and a reserved word as a variable stops it
// from starting.
func TestVectorRemapsAvoidReservedWords(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(vectorDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no pipeline in %s: %v", vectorDir, err)
	}
	remaps := 0
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Transforms map[string]struct {
				Type   string `yaml:"type"`
				Source string `yaml:"source"`
			} `yaml:"transforms"`
		}
		if err := yaml.Unmarshal(raw, &cfg); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for name, tr := range cfg.Transforms {
			if tr.Type != "remap" {
				continue
			}
			remaps++
			if bad := vrlReservedNames(tr.Source); len(bad) > 0 {
				t.Errorf("%s: transforms.%s uses VRL's reserved words %v as variables", file, name, bad)
			}
		}
	}
	if remaps == 0 {
		t.Fatal("no remap transform checked")
	}
}
