package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/server"
)

func init() {
	register("maintenance", "add, list or remove maintenance windows on a running server", maintenanceCmd.run)
	register("hosts", "forget decommissioned hosts on a running server", hostsCmd.run)
}

// maintenanceAddArgs is the synopsis of "maintenance add".
const maintenanceAddArgs = "--region R [--host H] [--check GLOB] --for D|--until T --reason TEXT"

var maintenanceCmd = group{name: "maintenance", subs: []subcommand{
	{names: []string{"add"}, synopsis: maintenanceAddArgs,
		summary: "open a maintenance window (needs the admin token)", run: maintenanceAdd},
	{names: []string{"list", "ls"}, summary: "list the open maintenance windows", run: maintenanceList},
	{names: []string{"rm", "remove", "delete"}, synopsis: "ID...",
		summary: "end maintenance windows (needs the admin token)", run: maintenanceRemove},
}}

var hostsCmd = group{name: "hosts", subs: []subcommand{
	{names: []string{"forget"}, synopsis: "HOST [--region R]",
		summary: "drop a decommissioned host, its checks, alerts and state (needs the admin token)", run: hostsForget},
}}

// apiClient talks to a running healthrouter's JSON API.
type apiClient struct {
	base  string
	token string
	// tokenEnv names the variable the token came from, and admin says
	// whether the command needs the admin token: both for the advice a
	// refusal gets.
	tokenEnv string
	admin    bool
	// caFile is a PEM CA trusted besides the system's, for an https
	// --server with a certificate from a private CA.
	caFile string
	http   *http.Client
}

// envCAFile is the default of the client commands' --ca-file.
const envCAFile = "HEALTHROUTER_CA_FILE"

func (c *apiClient) register(fs *flag.FlagSet) {
	fs.StringVar(&c.base, "server", "http://127.0.0.1:8080", "healthrouter `URL`")
	fs.StringVar(&c.caFile, "ca-file", os.Getenv(envCAFile),
		"PEM `file` of the CA that signed an https --server's certificate, trusted besides the system's (env "+envCAFile+")")
}

// useToken picks the admin token for writes, else any token the
// environment offers for reads: the server takes an ingest token or the
// admin token on its read endpoints.
func (c *apiClient) useToken(admin bool) {
	c.admin = admin
	if t := os.Getenv(config.EnvAdminToken); t != "" {
		c.token, c.tokenEnv = t, config.EnvAdminToken
		return
	}
	if !admin {
		if toks := strings.Split(os.Getenv(config.EnvIngestTokens), ","); strings.TrimSpace(toks[0]) != "" {
			c.token, c.tokenEnv = strings.TrimSpace(toks[0]), config.EnvIngestTokens
		}
	}
}

// newHTTPClient is the client for --server, trusting --ca-file too.
func (c *apiClient) newHTTPClient() (*http.Client, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	if c.caFile == "" {
		return client, nil
	}
	roots, err := rootsWith(c.caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	client.Transport = transport
	return client, nil
}

// do sends a request and decodes a 2xx JSON answer into out (if non-nil).
// Any other status becomes an error carrying the server's message.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	if u, err := url.Parse(c.base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--server %q: want http(s)://host:port, such as http://127.0.0.1:8080", c.base)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("--server %q: %w", c.base, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.http == nil {
		if c.http, err = c.newHTTPClient(); err != nil {
			return err
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w%s", method, path, err, c.unreachableHint(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := fmt.Sprintf("status %d", resp.StatusCode)
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = fmt.Sprintf("%s (%d)", e.Error, resp.StatusCode)
		}
		if resp.StatusCode == http.StatusUnauthorized {
			msg += ": " + c.tokenAdvice()
		}
		return fmt.Errorf("%s %s: %s", method, path, msg)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
		}
	}
	return nil
}

// tokenAdvice says which variable to set after the server refused the
// request's token (or its lack of one).
func (c *apiClient) tokenAdvice() string {
	want := "set " + config.EnvAdminToken + " to the server's admin token"
	if !c.admin {
		want = "set " + config.EnvIngestTokens + " to one of the server's ingest tokens, or " +
			config.EnvAdminToken + " to its admin token"
	}
	if c.tokenEnv == "" {
		return "no token sent; " + want
	}
	return "the server refused the token from " + c.tokenEnv + "; " + want
}

// unreachableHint suggests --server when nothing answered at its address,
// and --ca-file when the answer came with a certificate no trusted CA
// signed.
func (c *apiClient) unreachableHint(err error) string {
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &dnsErr):
		return fmt.Sprintf(" (no healthrouter at %s: give its URL with --server)", c.base)
	case errors.As(err, &unknownCA):
		return " (the server's certificate is signed by a CA this host does not trust: give that CA's PEM with --ca-file or " + envCAFile + ")"
	}
	return ""
}

func maintenanceAdd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("maintenance add", stderr)
	var c apiClient
	c.register(fs)
	var req server.WindowRequest
	fs.StringVar(&req.Region, "region", "", "region (required)")
	fs.StringVar(&req.Host, "host", "", "host (default: the whole region)")
	fs.StringVar(&req.Check, "check", "", "check name `glob` (default: every check)")
	fs.StringVar(&req.Reason, "reason", "", "why, for whoever is on call (required)")
	dur := fs.Duration("for", 0, "length of the window, e.g. 2h")
	until := fs.String("until", "", "end of the window, RFC3339 (instead of --for)")
	usageLine(fs, "maintenance add "+maintenanceAddArgs+" [--server URL]", "")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	switch {
	case *dur != 0 && *until != "":
		return &exitError{code: 2, msg: "give --for or --until, not both"}
	case *dur < 0:
		return &exitError{code: 2, msg: "--for must be positive, e.g. 2h"}
	case *dur > 0:
		req.Until = time.Now().Add(*dur).UTC().Truncate(time.Second)
	case *until != "":
		t, err := time.Parse(time.RFC3339, *until)
		if err != nil {
			return &exitError{code: 2, msg: "--until: want RFC3339 such as 2026-11-25T18:00:00Z"}
		}
		req.Until = t
	default:
		return &exitError{code: 2, msg: "--for or --until is required"}
	}
	c.useToken(true)
	var created server.WindowCreated
	if err := c.do(context.Background(), http.MethodPost, "/v1/maintenance", req, &created); err != nil {
		return err
	}
	w := created.Window
	fmt.Fprintf(stdout, "window %s: %s until %s (%s)\n", w.ID, scope(w), w.Until.Format(time.RFC3339), w.Reason)
	for _, warning := range created.Warnings {
		fmt.Fprintln(stderr, "warning: "+warning)
	}
	return nil
}

func maintenanceList(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("maintenance list", stderr)
	var c apiClient
	c.register(fs)
	usageLine(fs, "maintenance list [--server URL]", "")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	c.useToken(false)
	var out struct {
		Windows []health.Window `json:"windows"`
	}
	if err := c.do(context.Background(), http.MethodGet, "/v1/maintenance", nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSCOPE\tUNTIL\tREASON")
	for _, w := range out.Windows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", w.ID, scope(w), w.Until.Format(time.RFC3339), w.Reason)
	}
	return tw.Flush()
}

func maintenanceRemove(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("maintenance rm", stderr)
	var c apiClient
	c.register(fs)
	usageLine(fs, "maintenance rm ID... [--server URL]", "")
	ids, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return &exitError{code: 2, msg: "rm: give the window id(s)"}
	}
	c.useToken(true)
	var errs []error
	for _, id := range ids {
		if id == "" {
			errs = append(errs, errors.New("rm: empty window id"))
			continue
		}
		var ended server.WindowEnded // only when there is a warning
		if err := c.do(context.Background(), http.MethodDelete, "/v1/maintenance/"+url.PathEscape(id), nil, &ended); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(stdout, "window %s ended\n", id)
		for _, warning := range ended.Warnings {
			fmt.Fprintln(stderr, "warning: "+warning)
		}
	}
	return errors.Join(errs...)
}

func scope(w health.Window) string {
	s := "region " + w.Region
	if w.Host != "" {
		s += " host " + w.Host
	}
	if w.Check != "" {
		s += " checks " + w.Check
	}
	return s
}

// hostsForget runs "hosts forget HOST [--region R]": the server drops the
// host, its checks, its alerts and its stored state. A host that reports
// again is tracked afresh.
func hostsForget(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("hosts forget", stderr)
	var c apiClient
	c.register(fs)
	region := fs.String("region", "", "the host's `region` (needed when the name is in several regions)")
	usageLine(fs, "hosts forget HOST [--region R] [--server URL]",
		"The server drops HOST, its checks, its alerts and its stored state; a host that reports again is tracked afresh.")
	names, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	host, err := oneArg(fs, names, "forget: give one host name")
	if err != nil {
		return err
	}
	path := "/v1/hosts/" + url.PathEscape(host)
	if *region != "" {
		path += "?" + url.Values{"region": {*region}}.Encode()
	}
	c.useToken(true)
	var out server.ForgetResponse
	if err := c.do(context.Background(), http.MethodDelete, path, nil, &out); err != nil {
		return err
	}
	noun := "checks"
	if len(out.Forgotten) == 1 {
		noun = "check"
	}
	fmt.Fprintf(stdout, "host %s (%s) forgotten: %d %s removed\n", out.Host, out.Region, len(out.Forgotten), noun)
	return nil
}
