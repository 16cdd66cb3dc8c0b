package grafana

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/grafana/grafana-openapi-client-go/models"
	"go.yaml.in/yaml/v3"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// Export writes the objects Apply would create, as a Grafana alerting
// file-provisioning document (apiVersion 1): the rule groups, the PagerDuty
// contact points and, in policy mode, a notification policy tree holding
// healthrouter's sub-route. Routing keys appear as ${ENV_VAR} references that
// Grafana resolves from its own environment, never as values. now decides
// which regions pruning leaves out, as it does for Apply.
func Export(cfg *config.Config, regions []Region, now time.Time, w io.Writer) error {
	b, err := newBuilder(cfg)
	if err != nil {
		return err
	}
	d := b.build(regions, now)
	doc := exportDoc{APIVersion: 1}
	for _, g := range d.groups {
		eg := exportGroup{
			OrgID:    b.g.OrgID,
			Name:     g.name,
			Folder:   d.folderTitle,
			Interval: promDuration(time.Duration(g.interval) * time.Second),
		}
		for _, r := range g.rules {
			eg.Rules = append(eg.Rules, exportRuleOf(r))
		}
		doc.Groups = append(doc.Groups, eg)
	}
	for _, dc := range d.contactPoints {
		settings := settingsMap(dc.cp.Settings)
		settings["integrationKey"] = "${" + dc.envVar + "}"
		doc.ContactPoints = append(doc.ContactPoints, exportContactPoint{
			OrgID: b.g.OrgID,
			Name:  dc.cp.Name,
			Receivers: []exportReceiver{{
				UID:                   dc.cp.UID,
				Type:                  s(dc.cp.Type),
				Settings:              settings,
				DisableResolveMessage: dc.cp.DisableResolveMessage,
			}},
		})
	}
	if d.policyRoute != nil {
		doc.Policies = []exportPolicy{{
			OrgID: b.g.OrgID,
			exportRoute: exportRoute{
				Receiver: contactPointName(defaultKey),
				GroupBy:  []string{"grafana_folder", "alertname"},
				Routes:   []exportRoute{exportRouteOf(d.policyRoute)},
			},
		}}
	}

	var buf bytes.Buffer
	buf.WriteString(exportHeader)
	if d.policyRoute != nil {
		buf.WriteString(exportPolicyWarning)
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("encode grafana provisioning yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encode grafana provisioning yaml: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write grafana provisioning yaml: %w", err)
	}
	return nil
}

const exportHeader = `# Grafana alerting provisioning for healthrouter, written by "healthrouter export".
# The same objects "healthrouter apply" manages through the API: use one or the other.
# Routing keys are ${VAR} references resolved from Grafana's environment.
`

const exportPolicyWarning = `# Policy routing: a provisioned notification policy replaces Grafana's whole policy
# tree. Merge healthrouter's route (matching managed_by=healthrouter) into your own
# tree rather than deploying this one as is, unless healthrouter is its only user.
`

type exportDoc struct {
	APIVersion    int                  `yaml:"apiVersion"`
	Groups        []exportGroup        `yaml:"groups"`
	ContactPoints []exportContactPoint `yaml:"contactPoints"`
	Policies      []exportPolicy       `yaml:"policies,omitempty"`
}

type exportGroup struct {
	OrgID    int64        `yaml:"orgId"`
	Name     string       `yaml:"name"`
	Folder   string       `yaml:"folder"`
	Interval string       `yaml:"interval"`
	Rules    []exportRule `yaml:"rules"`
}

type exportRule struct {
	UID                  string                      `yaml:"uid"`
	Title                string                      `yaml:"title"`
	Condition            string                      `yaml:"condition"`
	Data                 []exportQuery               `yaml:"data"`
	NoDataState          string                      `yaml:"noDataState"`
	ExecErrState         string                      `yaml:"execErrState"`
	For                  string                      `yaml:"for"`
	Annotations          map[string]string           `yaml:"annotations"`
	Labels               map[string]string           `yaml:"labels"`
	IsPaused             bool                        `yaml:"isPaused"`
	NotificationSettings *exportNotificationSettings `yaml:"notification_settings,omitempty"`
}

type exportQuery struct {
	RefID             string         `yaml:"refId"`
	RelativeTimeRange exportRange    `yaml:"relativeTimeRange"`
	DatasourceUID     string         `yaml:"datasourceUid"`
	Model             map[string]any `yaml:"model"`
}

type exportRange struct {
	From int64 `yaml:"from"`
	To   int64 `yaml:"to"`
}

type exportNotificationSettings struct {
	Receiver       string   `yaml:"receiver"`
	GroupBy        []string `yaml:"group_by,omitempty"`
	GroupWait      string   `yaml:"group_wait,omitempty"`
	GroupInterval  string   `yaml:"group_interval,omitempty"`
	RepeatInterval string   `yaml:"repeat_interval,omitempty"`
}

type exportContactPoint struct {
	OrgID     int64            `yaml:"orgId"`
	Name      string           `yaml:"name"`
	Receivers []exportReceiver `yaml:"receivers"`
}

type exportReceiver struct {
	UID                   string         `yaml:"uid"`
	Type                  string         `yaml:"type"`
	Settings              map[string]any `yaml:"settings"`
	DisableResolveMessage bool           `yaml:"disableResolveMessage"`
}

type exportPolicy struct {
	OrgID       int64 `yaml:"orgId"`
	exportRoute `yaml:",inline"`
}

type exportRoute struct {
	Receiver       string        `yaml:"receiver"`
	GroupBy        []string      `yaml:"group_by,omitempty"`
	ObjectMatchers [][]string    `yaml:"object_matchers,omitempty"`
	GroupWait      string        `yaml:"group_wait,omitempty"`
	GroupInterval  string        `yaml:"group_interval,omitempty"`
	RepeatInterval string        `yaml:"repeat_interval,omitempty"`
	Continue       bool          `yaml:"continue,omitempty"`
	Routes         []exportRoute `yaml:"routes,omitempty"`
}

func exportRuleOf(r *models.ProvisionedAlertRule) exportRule {
	er := exportRule{
		UID:          r.UID,
		Title:        s(r.Title),
		Condition:    s(r.Condition),
		NoDataState:  s(r.NoDataState),
		ExecErrState: s(r.ExecErrState),
		For:          promDuration(dur(r.For)),
		Annotations:  r.Annotations,
		Labels:       r.Labels,
		IsPaused:     r.IsPaused,
	}
	for _, q := range r.Data {
		er.Data = append(er.Data, exportQuery{
			RefID:             q.RefID,
			RelativeTimeRange: exportRange{From: timeRange(q.RelativeTimeRange)[0], To: timeRange(q.RelativeTimeRange)[1]},
			DatasourceUID:     q.DatasourceUID,
			Model:             settingsMap(q.Model),
		})
	}
	if ns := r.NotificationSettings; ns != nil {
		er.NotificationSettings = &exportNotificationSettings{
			Receiver:       s(ns.Receiver),
			GroupBy:        ns.GroupBy,
			GroupWait:      ns.GroupWait,
			GroupInterval:  ns.GroupInterval,
			RepeatInterval: ns.RepeatInterval,
		}
	}
	return er
}

func exportRouteOf(r *models.Route) exportRoute {
	er := exportRoute{
		Receiver:       r.Receiver,
		GroupBy:        r.GroupBy,
		GroupWait:      r.GroupWait,
		GroupInterval:  r.GroupInterval,
		RepeatInterval: r.RepeatInterval,
		Continue:       r.Continue,
	}
	for _, m := range r.ObjectMatchers {
		er.ObjectMatchers = append(er.ObjectMatchers, []string(m))
	}
	for _, c := range r.Routes {
		er.Routes = append(er.Routes, exportRouteOf(c))
	}
	return er
}
