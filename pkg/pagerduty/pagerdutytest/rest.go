package pagerdutytest

import (
	"net/http"
	"strconv"
	"strings"
)

// REST error codes (PagerDuty REST API "Errors").
const (
	codeInvalidInput = 2001
	codeAuthFailed   = 2006
	codeNotFound     = 2100
)

// Integration type names.
const (
	TypeEventsV2  = "events_api_v2_inbound_integration"
	TypeEventsV1  = "generic_events_api_inbound_integration"
	TypeEmail     = "generic_email_inbound_integration"
	referenceType = "_reference"
)

// Service is a PagerDuty service as a test sets it up.
type Service struct {
	ID       string
	Name     string
	Disabled bool
	// EscalationPolicyID is empty for a service without one (the API then
	// answers "escalation_policy": null).
	EscalationPolicyID string
	Integrations       []Integration
	// Urgency is the incident urgency the service gives: "high" (also when
	// empty, the default of a new service), "low" or "severity_based".
	// With OffHoursUrgency set too, the service uses support hours:
	// Urgency during them, OffHoursUrgency outside.
	Urgency         string
	OffHoursUrgency string
}

// Integration is a service integration. Type defaults to TypeEventsV2.
type Integration struct {
	ID   string
	Name string
	Type string
	Key  string
}

// EscalationPolicy is an escalation policy; each rule lists its targets'
// user IDs (a rule may have none).
type EscalationPolicy struct {
	ID    string
	Name  string
	Rules [][]string
}

// AddService adds or replaces a service.
func (s *Server) AddService(svc Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range svc.Integrations {
		if svc.Integrations[i].Type == "" {
			svc.Integrations[i].Type = TypeEventsV2
		}
	}
	for i := range s.services {
		if s.services[i].ID == svc.ID {
			s.services[i] = svc
			return
		}
	}
	s.services = append(s.services, svc)
}

// AddEscalationPolicy adds or replaces an escalation policy.
func (s *Server) AddEscalationPolicy(ep EscalationPolicy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policies[ep.ID] = ep
}

func restError(w http.ResponseWriter, status, code int, message string, errs ...string) {
	if errs == nil {
		errs = []string{}
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": message, "code": code, "errors": errs}})
}

// rest serves the REST reads. Paths and query parameters are checked as
// PagerDuty does; anything else is 404 with PagerDuty's error body.
func (s *Server) rest(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.restRequests++
	token := s.apiToken
	s.mu.Unlock()

	if token == "" || r.Header.Get("Authorization") != "Token token="+token {
		restError(w, http.StatusUnauthorized, codeAuthFailed, "Authentication failed")
		return
	}
	if r.Method != http.MethodGet {
		restError(w, http.StatusNotFound, codeNotFound, "Not Found")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "services":
		s.listServices(w, r)
	case len(parts) == 2 && parts[0] == "services":
		s.getService(w, r, parts[1])
	case len(parts) == 2 && parts[0] == "escalation_policies":
		s.getEscalationPolicy(w, r, parts[1])
	case len(parts) == 4 && parts[0] == "services" && parts[2] == "integrations":
		s.getIntegration(w, r, parts[1], parts[3])
	default:
		restError(w, http.StatusNotFound, codeNotFound, "Not Found")
	}
}

// includes returns the include[] values, or ok false (after answering 400)
// when one is not allowed on this endpoint.
func includes(w http.ResponseWriter, r *http.Request, allowed ...string) (map[string]bool, bool) {
	got := map[string]bool{}
	for _, v := range r.URL.Query()["include[]"] {
		ok := false
		for _, a := range allowed {
			ok = ok || v == a
		}
		if !ok {
			restError(w, http.StatusBadRequest, codeInvalidInput, "Invalid Input Provided", "Include is invalid: "+v)
			return nil, false
		}
		got[v] = true
	}
	return got, true
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) {
	inc, ok := includes(w, r, "escalation_policies", "teams", "integrations", "auto_pause_notifications_parameters")
	if !ok {
		return
	}
	q := r.URL.Query()
	limit, offset := 25, 0
	var err error
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 {
			restError(w, http.StatusBadRequest, codeInvalidInput, "Invalid Input Provided", "limit must be a positive integer")
			return
		}
		limit = min(limit, 100)
	}
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			restError(w, http.StatusBadRequest, codeInvalidInput, "Invalid Input Provided", "offset must be a non-negative integer")
			return
		}
	}
	if offset+limit > 10000 {
		restError(w, http.StatusBadRequest, codeInvalidInput, "Invalid Input Provided", "Offset+limit must be at most 10000")
		return
	}

	s.mu.Lock()
	total := len(s.services)
	var page []map[string]any
	for i := offset; i < total && i < offset+limit; i++ {
		page = append(page, s.serviceJSON(&s.services[i], inc["integrations"] && !s.referencesOnly))
	}
	s.mu.Unlock()
	if page == nil {
		page = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"services": page,
		"limit":    limit,
		"offset":   offset,
		"more":     offset+limit < total,
		"total":    nil,
	})
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request, id string) {
	inc, ok := includes(w, r, "escalation_policies", "teams", "auto_pause_notifications_parameters", "integrations")
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.services {
		if s.services[i].ID == id {
			writeJSON(w, http.StatusOK, map[string]any{"service": s.serviceJSON(&s.services[i], inc["integrations"])})
			return
		}
	}
	restError(w, http.StatusNotFound, codeNotFound, "Not Found")
}

func (s *Server) getEscalationPolicy(w http.ResponseWriter, r *http.Request, id string) {
	if _, ok := includes(w, r, "services", "teams", "targets", "escalation_rule_assignment_strategies"); !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ep, found := s.policies[id]
	if !found {
		restError(w, http.StatusNotFound, codeNotFound, "Not Found")
		return
	}
	rules := []map[string]any{}
	for i, targets := range ep.Rules {
		ts := []map[string]any{}
		for _, t := range targets {
			ts = append(ts, map[string]any{"id": t, "type": "user_reference", "summary": t,
				"self": s.srv.URL + "/users/" + t})
		}
		rules = append(rules, map[string]any{
			"id":                          ep.ID + "R" + strconv.Itoa(i+1),
			"escalation_delay_in_minutes": 30,
			"targets":                     ts,
		})
	}
	services := []map[string]any{}
	for i := range s.services {
		if s.services[i].EscalationPolicyID == ep.ID {
			services = append(services, s.reference("service", s.services[i].ID, s.services[i].Name, "/services/"))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"escalation_policy": map[string]any{
		"id":               ep.ID,
		"type":             "escalation_policy",
		"summary":          ep.Name,
		"self":             s.srv.URL + "/escalation_policies/" + ep.ID,
		"html_url":         "https://example.pagerduty.com/escalation_policies/" + ep.ID,
		"name":             ep.Name,
		"escalation_rules": rules,
		"services":         services,
		"num_loops":        0,
		"teams":            []any{},
	}})
}

func (s *Server) getIntegration(w http.ResponseWriter, r *http.Request, serviceID, id string) {
	if _, ok := includes(w, r, "services", "vendors"); !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.services {
		svc := &s.services[i]
		if svc.ID != serviceID {
			continue
		}
		for j := range svc.Integrations {
			if svc.Integrations[j].ID == id {
				writeJSON(w, http.StatusOK, map[string]any{"integration": s.integrationJSON(svc, &svc.Integrations[j], true)})
				return
			}
		}
	}
	restError(w, http.StatusNotFound, codeNotFound, "Not Found")
}

func (s *Server) reference(typ, id, summary, path string) map[string]any {
	return map[string]any{
		"id":       id,
		"type":     typ + referenceType,
		"summary":  summary,
		"self":     s.srv.URL + path + id,
		"html_url": "https://example.pagerduty.com" + path + id,
	}
}

func (s *Server) serviceJSON(svc *Service, fullIntegrations bool) map[string]any {
	status := "active"
	if svc.Disabled {
		status = "disabled"
	}
	var ep any // null when the service has none
	if svc.EscalationPolicyID != "" {
		name := svc.EscalationPolicyID
		if p, ok := s.policies[svc.EscalationPolicyID]; ok {
			name = p.Name
		}
		ep = s.reference("escalation_policy", svc.EscalationPolicyID, name, "/escalation_policies/")
	}
	integrations := []map[string]any{}
	for i := range svc.Integrations {
		integrations = append(integrations, s.integrationJSON(svc, &svc.Integrations[i], fullIntegrations))
	}
	return map[string]any{
		"id":                    svc.ID,
		"type":                  "service",
		"summary":               svc.Name,
		"self":                  s.srv.URL + "/services/" + svc.ID,
		"html_url":              "https://example.pagerduty.com/service-directory/" + svc.ID,
		"name":                  svc.Name,
		"status":                status,
		"escalation_policy":     ep,
		"integrations":          integrations,
		"teams":                 []any{},
		"incident_urgency_rule": urgencyRuleJSON(svc),
	}
}

func urgencyRuleJSON(svc *Service) map[string]any {
	urgency := svc.Urgency
	if urgency == "" {
		urgency = "high"
	}
	if svc.OffHoursUrgency == "" {
		return map[string]any{"type": "constant", "urgency": urgency}
	}
	return map[string]any{
		"type":                  "use_support_hours",
		"during_support_hours":  map[string]any{"type": "constant", "urgency": urgency},
		"outside_support_hours": map[string]any{"type": "constant", "urgency": svc.OffHoursUrgency},
	}
}

// integrationJSON renders an integration in full or as a reference. The
// full form omits email_filter_mode: go-pagerduty refuses null there.
func (s *Server) integrationJSON(svc *Service, in *Integration, full bool) map[string]any {
	path := "/services/" + svc.ID + "/integrations/"
	if !full {
		return s.reference(in.Type, in.ID, in.Name, path)
	}
	return map[string]any{
		"id":              in.ID,
		"type":            in.Type,
		"summary":         in.Name,
		"self":            s.srv.URL + path + in.ID,
		"html_url":        "https://example.pagerduty.com" + path + in.ID,
		"name":            in.Name,
		"service":         s.reference("service", svc.ID, svc.Name, "/services/"),
		"integration_key": in.Key,
		"created_at":      "2024-01-02T03:04:05Z",
	}
}
