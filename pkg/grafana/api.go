package grafana

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-openapi/runtime"
	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	goapi "github.com/grafana/grafana-openapi-client-go/client"
	"github.com/grafana/grafana-openapi-client-go/client/folders"
	ghealth "github.com/grafana/grafana-openapi-client-go/client/health"
	"github.com/grafana/grafana-openapi-client-go/client/provisioning"
	"github.com/grafana/grafana-openapi-client-go/models"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// headerDisableProvenance makes Grafana store objects without provenance, so
// they stay editable in its UI. Grafana checks only that it is present.
const headerDisableProvenance = "X-Disable-Provenance"

// maxErrorBody bounds how much of an error response is kept for messages.
const maxErrorBody = 4 << 10

// Kinds of objects, as they appear in plans, logs and metric labels.
const (
	kindFolder       = "folder"
	kindContactPoint = "contact_point"
	kindRuleGroup    = "rule_group"
	kindPolicy       = "policy"
)

// writeRecorder learns about every successful write, for metrics and logs.
type writeRecorder func(kind, action, name string)

// grafanaAPI is the part of Grafana's HTTP API the reconciler uses, on top of
// the generated client. It owns the transport: its own http.Client (the
// generated constructor mutates http.DefaultTransport), no client-side retries
// (Run retries a whole reconcile with backoff), the provenance header on every
// write, and errors that carry Grafana's message but never a secret.
type grafanaAPI struct {
	c       *goapi.GrafanaHTTPAPI
	folder  string
	redact  *strings.Replacer
	onWrite writeRecorder
}

func newGrafanaAPI(g *config.Grafana, httpClient *http.Client, secrets []string, onWrite writeRecorder) (*grafanaAPI, error) {
	u, err := url.Parse(g.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("grafana url %q: want an absolute http(s) URL", g.URL)
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: g.Timeout.D()}
	}
	base := httpClient.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	hc := *httpClient
	hc.Transport = &headerTransport{
		next:              base,
		orgID:             strconv.FormatInt(g.OrgID, 10),
		disableProvenance: g.DisableProvenance,
	}
	// A redirect would replay a write somewhere else; Grafana's API has none.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	rt := httptransport.NewWithClient(u.Host, strings.TrimRight(u.Path, "/")+goapi.DefaultBasePath, []string{u.Scheme}, &hc)
	// The runtime dumps requests when DEBUG is set in the environment; those
	// dumps would print the bearer token and routing keys. (The field, not
	// SetDebug, which also writes a package global: a data race.)
	rt.Debug = false
	if tok := g.Token.Reveal(); tok != "" {
		rt.DefaultAuthentication = httptransport.BearerToken(tok)
	}
	rt.Consumers[runtime.JSONMime] = runtime.ConsumerFunc(func(r io.Reader, v any) error {
		return json.NewDecoder(r).Decode(v)
	})
	rt.SetResponseReader(func(resp *http.Response) runtime.ClientResponse { return newBufferedResponse(resp) })

	var pairs []string
	for _, s := range secrets {
		if s != "" {
			pairs = append(pairs, s, "[REDACTED]")
		}
	}
	return &grafanaAPI{
		c:       goapi.New(rt, &goapi.TransportConfig{Host: u.Host, BasePath: goapi.DefaultBasePath, OrgID: g.OrgID}, nil),
		folder:  g.FolderUID,
		redact:  strings.NewReplacer(pairs...),
		onWrite: onWrite,
	}, nil
}

// keepProvenanceKey marks a write that must leave out X-Disable-Provenance:
// the object already has a provenance, Grafana refuses to clear it, and a
// write asking to would fail on every reconcile.
type keepProvenanceKey struct{}

// keepingProvenance returns ctx for writes that keep the stored provenance.
func keepingProvenance(ctx context.Context) context.Context {
	return context.WithValue(ctx, keepProvenanceKey{}, true)
}

// headerTransport adds the headers every request needs.
type headerTransport struct {
	next              http.RoundTripper
	orgID             string
	disableProvenance bool
}

func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("X-Grafana-Org-Id", t.orgID)
	req.Header.Set("User-Agent", "healthrouter")
	keep, _ := req.Context().Value(keepProvenanceKey{}).(bool)
	if t.disableProvenance && !keep && req.Method != http.MethodGet && req.Method != http.MethodHead {
		req.Header.Set(headerDisableProvenance, "true")
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	if looksLikeJSON(body) {
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, nil
	}
	// An error answer that is not JSON (a proxy's plain-text 401, an HTML
	// error page) fails to decode into the client's error types, which
	// would lose its status and count a Grafana that answered as one that
	// did not.
	return nil, &plainAnswer{Status: resp.StatusCode, Body: body}
}

// plainAnswer is an error answer whose body is not JSON.
type plainAnswer struct {
	Status int
	Body   []byte
}

func (e *plainAnswer) Error() string {
	return fmt.Sprintf("answered %d: %s", e.Status, errorMessage(e.Body))
}

// looksLikeJSON reports whether body starts as a JSON object or array (or
// is empty, which the client's error types take too).
func looksLikeJSON(body []byte) bool {
	body = bytes.TrimSpace(body)
	return len(body) == 0 || body[0] == '{' || body[0] == '['
}

// bufferedResponse keeps a bounded copy of an error response's body so the
// error can say what Grafana objected to.
type bufferedResponse struct {
	resp *http.Response
	body []byte
}

func newBufferedResponse(resp *http.Response) *bufferedResponse {
	b := &bufferedResponse{resp: resp}
	if resp.StatusCode >= 300 {
		b.body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b.body))
	}
	return b
}

func (b *bufferedResponse) Code() int                       { return b.resp.StatusCode }
func (b *bufferedResponse) Message() string                 { return b.resp.Status }
func (b *bufferedResponse) GetHeader(name string) string    { return b.resp.Header.Get(name) }
func (b *bufferedResponse) GetHeaders(name string) []string { return b.resp.Header.Values(name) }
func (b *bufferedResponse) Body() io.ReadCloser             { return b.resp.Body }

// APIError marshals its Response into its message; give it Grafana's words.
func (b *bufferedResponse) MarshalJSON() ([]byte, error) { return json.Marshal(errorMessage(b.body)) }

// callError is a failed call to Grafana: what was attempted, the HTTP status
// (0 when no answer came back) and Grafana's message, secrets removed.
type callError struct {
	Op      string
	Status  int
	Message string
	// Write: the call asked Grafana to change something.
	Write bool
	err   error
}

// canceled reports whether the call ended because our own context did: that
// says nothing about Grafana.
func (e *callError) canceled() bool { return errors.Is(e.err, context.Canceled) }

func (e *callError) Error() string {
	var msg string
	switch {
	case e.Status == 0:
		return e.Op + ": " + e.Message
	case e.Message == "":
		msg = fmt.Sprintf("%s: grafana answered %d %s", e.Op, e.Status, http.StatusText(e.Status))
	default:
		msg = fmt.Sprintf("%s: grafana answered %d: %s", e.Op, e.Status, e.Message)
	}
	if e.Status == http.StatusUnauthorized {
		msg += " (check the service account token in " + config.EnvGrafanaToken + ")"
	}
	return msg
}

func (e *callError) Unwrap() error { return e.err }

// Unreachable reports whether Grafana could not be reached or could not
// serve: no answer, or a 5xx. A 4xx means Grafana is up and said no, and so
// does a 500 to a write: Grafana answers some refusals so (a provenance it
// keeps, a rule uid before 11.5.2), and a Grafana that serves reads can
// still alert with the rules it has.
func (e *callError) Unreachable() bool {
	switch {
	case e.Status == 0:
		return !e.canceled()
	case e.Write && e.Status == http.StatusInternalServerError:
		return false
	default:
		return e.Status >= 500
	}
}

// isUnreachable reports whether err (anywhere in its chain) is a call that
// did not reach a working Grafana.
func isUnreachable(err error) bool {
	var ce *callError
	return errors.As(err, &ce) && ce.Unreachable()
}

// wrapWrite is wrap for a call that changes something in Grafana.
func (a *grafanaAPI) wrapWrite(op string, err error) error {
	err = a.wrap(op, err)
	var ce *callError
	if errors.As(err, &ce) {
		ce.Write = true
	}
	return err
}

// wrap turns a client error into a callError.
func (a *grafanaAPI) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	ce := &callError{Op: op, err: err}
	var apiErr *runtime.APIError
	var coded interface{ Code() int }
	var plain *plainAnswer
	switch {
	case errors.As(err, &plain):
		ce.Status, ce.Message = plain.Status, errorMessage(plain.Body)
	case errors.As(err, &apiErr):
		ce.Status = apiErr.Code
		if br, ok := apiErr.Response.(*bufferedResponse); ok {
			ce.Message = errorMessage(br.body)
		}
	case errors.As(err, &coded):
		// A declared error response: its Payload holds Grafana's body.
		ce.Status = coded.Code()
		if raw, mErr := json.Marshal(coded); mErr == nil {
			var env struct{ Payload json.RawMessage }
			if json.Unmarshal(raw, &env) == nil {
				ce.Message = errorMessage(env.Payload)
			}
		}
	default:
		ce.Message = err.Error()
	}
	ce.Message = a.redact.Replace(ce.Message)
	return ce
}

// errorMessage pulls the message out of a Grafana error body.
func errorMessage(body []byte) string {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || string(body) == "null" {
		return ""
	}
	var m struct {
		Message string `json:"message"`
		Status  string `json:"status"`
	}
	if json.Unmarshal(body, &m) == nil && (m.Message != "" || m.Status != "") {
		if m.Message == "" {
			return m.Status
		}
		return m.Message
	}
	const maxLen = 300
	s := string(body)
	if len(s) > maxLen {
		s = truncateUTF8(s, maxLen) + "..."
	}
	return s
}

func (a *grafanaAPI) wrote(kind, action, name string) {
	if a.onWrite != nil {
		a.onWrite(kind, action, name)
	}
}

// health asks Grafana's unauthenticated health endpoint whether it serves,
// and which version it runs.
func (a *grafanaAPI) health(ctx context.Context) (version string, err error) {
	resp, err := a.c.Health.GetHealthWithParams(ghealth.NewGetHealthParamsWithContext(ctx))
	if err != nil {
		return "", a.wrap("GET health", err)
	}
	if resp.Payload != nil {
		version = resp.Payload.Version
	}
	return version, nil
}

// getFolder returns the folder, or nil when it does not exist.
func (a *grafanaAPI) getFolder(ctx context.Context, uid string) (*models.Folder, error) {
	ok, err := a.c.Folders.GetFolderByUIDWithParams(folders.NewGetFolderByUIDParamsWithContext(ctx).WithFolderUID(uid))
	if err != nil {
		var nf *folders.GetFolderByUIDNotFound
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, a.wrap("GET folder "+uid, err)
	}
	return ok.Payload, nil
}

func (a *grafanaAPI) createFolder(ctx context.Context, uid, title string) error {
	p := folders.NewCreateFolderParamsWithContext(ctx).WithBody(&models.CreateFolderCommand{UID: uid, Title: title})
	if _, err := a.c.Folders.CreateFolderWithParams(p); err != nil {
		return a.wrapWrite("create folder "+uid, err)
	}
	a.wrote(kindFolder, actionCreate, uid)
	return nil
}

// listRules returns every alert rule of the organisation.
func (a *grafanaAPI) listRules(ctx context.Context) ([]*models.ProvisionedAlertRule, error) {
	ok, err := a.c.Provisioning.GetAlertRulesWithParams(provisioning.NewGetAlertRulesParamsWithContext(ctx))
	if err != nil {
		return nil, a.wrap("GET alert rules", err)
	}
	return ok.Payload, nil
}

// getGroup returns a rule group of healthrouter's folder, nil when absent.
func (a *grafanaAPI) getGroup(ctx context.Context, name string) (*models.AlertRuleGroup, error) {
	p := provisioning.NewGetAlertRuleGroupParamsWithContext(ctx).WithFolderUID(a.folder).WithGroup(name)
	ok, err := a.c.Provisioning.GetAlertRuleGroupWithParams(p)
	if err != nil {
		var nf *provisioning.GetAlertRuleGroupNotFound
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, a.wrap("GET rule group "+name, err)
	}
	return ok.Payload, nil
}

// putGroup replaces a whole rule group: rules left out are deleted, which is
// what makes a group write atomic.
func (a *grafanaAPI) putGroup(ctx context.Context, g *models.AlertRuleGroup, action string) error {
	p := provisioning.NewPutAlertRuleGroupParamsWithContext(ctx).WithFolderUID(a.folder).WithGroup(g.Title).WithBody(g)
	if _, err := a.c.Provisioning.PutAlertRuleGroup(p); err != nil {
		return a.wrapWrite("PUT rule group "+g.Title, err)
	}
	a.wrote(kindRuleGroup, action, g.Title)
	return nil
}

func (a *grafanaAPI) deleteGroup(ctx context.Context, name string) error {
	p := provisioning.NewDeleteAlertRuleGroupParamsWithContext(ctx).WithFolderUID(a.folder).WithGroup(name)
	if _, err := a.c.Provisioning.DeleteAlertRuleGroupWithParams(p); err != nil {
		var nf *provisioning.DeleteAlertRuleGroupNotFound
		if !errors.As(err, &nf) {
			return a.wrapWrite("DELETE rule group "+name, err)
		}
	}
	a.wrote(kindRuleGroup, actionDelete, name)
	return nil
}

func (a *grafanaAPI) listContactPoints(ctx context.Context) ([]*models.EmbeddedContactPoint, error) {
	ok, err := a.c.Provisioning.GetContactpoints(provisioning.NewGetContactpointsParamsWithContext(ctx))
	if err != nil {
		return nil, a.wrap("GET contact points", err)
	}
	return ok.Payload, nil
}

func (a *grafanaAPI) createContactPoint(ctx context.Context, cp *models.EmbeddedContactPoint) error {
	p := provisioning.NewPostContactpointsParamsWithContext(ctx).WithBody(cp)
	if _, err := a.c.Provisioning.PostContactpoints(p); err != nil {
		return a.wrapWrite("create contact point "+cp.Name, err)
	}
	a.wrote(kindContactPoint, actionCreate, cp.Name)
	return nil
}

func (a *grafanaAPI) updateContactPoint(ctx context.Context, cp *models.EmbeddedContactPoint) error {
	p := provisioning.NewPutContactpointParamsWithContext(ctx).WithUID(cp.UID).WithBody(cp)
	if _, err := a.c.Provisioning.PutContactpoint(p); err != nil {
		return a.wrapWrite("update contact point "+cp.Name, err)
	}
	a.wrote(kindContactPoint, actionUpdate, cp.Name)
	return nil
}

func (a *grafanaAPI) deleteContactPoint(ctx context.Context, uid, name string) error {
	p := provisioning.NewDeleteContactpointsParamsWithContext(ctx).WithUID(uid)
	if _, err := a.c.Provisioning.DeleteContactpointsWithParams(p); err != nil {
		return a.wrapWrite("delete contact point "+name, err)
	}
	a.wrote(kindContactPoint, actionDelete, name)
	return nil
}

// policyPath is the provisioning API's notification policy tree, relative to
// the client's base path.
const policyPath = "/v1/provisioning/policies"

// getPolicy reads the notification policy tree. It goes through the client's
// transport (auth, org, timeouts, error handling as every other call) but
// decodes the answer itself: see policyTree for why.
func (a *grafanaAPI) getPolicy(ctx context.Context) (*policyTree, error) {
	const op = "GET notification policies"
	res, err := a.c.Transport.Submit(&runtime.ClientOperation{
		ID:                 "GetPolicyTree",
		Method:             http.MethodGet,
		PathPattern:        policyPath,
		ProducesMediaTypes: []string{runtime.JSONMime},
		ConsumesMediaTypes: []string{runtime.JSONMime},
		Schemes:            []string{"http", "https"},
		Params:             runtime.ClientRequestWriterFunc(func(runtime.ClientRequest, strfmt.Registry) error { return nil }),
		Reader: runtime.ClientResponseReaderFunc(func(resp runtime.ClientResponse, c runtime.Consumer) (any, error) {
			if resp.Code() != http.StatusOK {
				return nil, runtime.NewAPIError("[GET "+policyPath+"] GetPolicyTree", resp, resp.Code())
			}
			var raw json.RawMessage
			if err := c.Consume(resp.Body(), &raw); err != nil {
				return nil, &undecodableAnswer{status: resp.Code(), err: err}
			}
			tree, err := parsePolicyTree(raw)
			if err != nil {
				return nil, &undecodableAnswer{status: resp.Code(), err: err}
			}
			return tree, nil
		}),
		Context: ctx,
	})
	var bad *undecodableAnswer
	if errors.As(err, &bad) {
		// Grafana answered: a tree it sends that healthrouter cannot read
		// is not an outage, and must not page as one.
		return nil, fmt.Errorf("%s: grafana answered %d with a tree healthrouter cannot read: %w", op, bad.status, bad.err)
	}
	if err != nil {
		return nil, a.wrap(op, err)
	}
	return res.(*policyTree), nil
}

// undecodableAnswer is a successful answer whose body could not be read.
type undecodableAnswer struct {
	status int
	err    error
}

func (e *undecodableAnswer) Error() string { return e.err.Error() }
func (e *undecodableAnswer) Unwrap() error { return e.err }

// putPolicy replaces the whole notification policy tree.
func (a *grafanaAPI) putPolicy(ctx context.Context, tree *policyTree, action string) error {
	_, err := a.c.Transport.Submit(&runtime.ClientOperation{
		ID:                 "PutPolicyTree",
		Method:             http.MethodPut,
		PathPattern:        policyPath,
		ProducesMediaTypes: []string{runtime.JSONMime},
		ConsumesMediaTypes: []string{runtime.JSONMime},
		Schemes:            []string{"http", "https"},
		Params: runtime.ClientRequestWriterFunc(func(req runtime.ClientRequest, _ strfmt.Registry) error {
			return req.SetBodyParam(tree)
		}),
		Reader: runtime.ClientResponseReaderFunc(func(resp runtime.ClientResponse, _ runtime.Consumer) (any, error) {
			if resp.Code() != http.StatusAccepted {
				return nil, runtime.NewAPIError("[PUT "+policyPath+"] PutPolicyTree", resp, resp.Code())
			}
			return nil, nil
		}),
		Context: ctx,
	})
	if err != nil {
		return a.wrapWrite("PUT notification policies", err)
	}
	a.wrote(kindPolicy, action, "healthrouter route")
	return nil
}
