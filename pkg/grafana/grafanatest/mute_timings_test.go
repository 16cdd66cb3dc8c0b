package grafanatest

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/grafana/grafana-openapi-client-go/client/provisioning"
	"github.com/grafana/grafana-openapi-client-go/models"
)

func weekendNights(name string) *models.MuteTimeInterval {
	return &models.MuteTimeInterval{
		Name: name,
		TimeIntervals: []*models.TimeIntervalItem{{
			Times:    []*models.TimeIntervalTimeRange{{StartTime: "02:00", EndTime: "04:00"}},
			Weekdays: []string{"saturday", "sunday"},
			Location: "UTC",
		}},
	}
}

// storedVersion reads a mute timing's version as GET answers it.
func storedVersion(t *testing.T, s *Server, name string) string {
	t.Helper()
	code, body := send(t, s, http.MethodGet, "/mute-timings/"+name, nil, false)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", name, code, body)
	}
	var mt muteTiming
	if err := json.Unmarshal([]byte(body), &mt); err != nil {
		t.Fatal(err)
	}
	if mt.Version == "" {
		t.Fatalf("GET %s answered no version: %s", name, body)
	}
	return mt.Version
}

func TestMuteTimingStore(t *testing.T) {
	s, c := setup(t)

	created, err := c.Provisioning.PostMuteTiming(provisioning.NewPostMuteTimingParams().WithBody(weekendNights("nights")))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	if !reflect.DeepEqual(created.Payload, weekendNights("nights")) {
		t.Errorf("POST answered %+v", created.Payload)
	}
	if _, err := c.Provisioning.PostMuteTiming(provisioning.NewPostMuteTimingParams().WithBody(weekendNights("nights"))); status(err) != http.StatusBadRequest {
		t.Errorf("POST of a taken name: %v, want 400", err)
	}
	if err := s.AddMuteTiming(weekendNights("alpha")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMuteTiming(weekendNights("alpha")); err == nil {
		t.Error("AddMuteTiming took a taken name")
	}
	if err := s.AddMuteTiming(nil); err == nil {
		t.Error("AddMuteTiming took nil")
	}

	list, err := c.Provisioning.GetMuteTimings()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mt := range list.Payload {
		names = append(names, mt.Name)
	}
	if !reflect.DeepEqual(names, []string{"alpha", "nights"}) {
		t.Errorf("GET list: %v", names)
	}
	got, err := c.Provisioning.GetMuteTiming("nights")
	if err != nil || !reflect.DeepEqual(got.Payload, weekendNights("nights")) {
		t.Errorf("GET: %+v, %v", got, err)
	}
	if _, err := c.Provisioning.GetMuteTiming("nope"); status(err) != http.StatusNotFound {
		t.Errorf("GET unknown: %v, want 404", err)
	}
	// Provenance comes from the request, as for every provisioned object.
	if _, body := send(t, s, http.MethodGet, "/mute-timings/nights", nil, false); !strings.Contains(body, `"provenance":"api"`) {
		t.Errorf("POSTed timing: %s", body)
	}
	if _, body := send(t, s, http.MethodGet, "/mute-timings/alpha", nil, false); strings.Contains(body, `"provenance"`) {
		t.Errorf("seeded timing: %s", body)
	}

	// PUT: the version moves with the content; a stale one is refused.
	v1 := storedVersion(t, s, "nights")
	changed := weekendNights("nights")
	changed.TimeIntervals[0].Times[0].EndTime = "05:00"
	if code, body := send(t, s, http.MethodPut, "/mute-timings/nights", changed, false); code != http.StatusAccepted {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if mt, _ := s.MuteTiming("nights"); !reflect.DeepEqual(mt, changed) {
		t.Errorf("after PUT: %+v", mt)
	}
	v2 := storedVersion(t, s, "nights")
	if v2 == v1 {
		t.Errorf("version %s did not change with the content", v1)
	}
	stale := muteTiming{Name: "nights", TimeIntervals: weekendNights("").TimeIntervals, Version: v1}
	if code, _ := send(t, s, http.MethodPut, "/mute-timings/nights", stale, false); code != http.StatusConflict {
		t.Errorf("PUT with a stale version: %d, want 409", code)
	}
	for _, tt := range []struct {
		name, path string
		body       any
		want       int
	}{
		{"unknown", "/mute-timings/nope", weekendNights("nope"), http.StatusNotFound},
		{"rename", "/mute-timings/nights", weekendNights("days"), http.StatusBadRequest},
		{"invalid", "/mute-timings/nights", muteTiming{Name: "nights", TimeIntervals: []*models.TimeIntervalItem{{Weekdays: []string{"funday"}}}}, http.StatusBadRequest},
	} {
		if code, body := send(t, s, http.MethodPut, tt.path, tt.body, false); code != tt.want {
			t.Errorf("PUT %s: %d %s, want %d", tt.name, code, body, tt.want)
		}
	}
	if mt, _ := s.MuteTiming("nights"); !reflect.DeepEqual(mt, changed) {
		t.Errorf("a refused PUT changed the timing: %+v", mt)
	}

	// DELETE: a stale version is refused; deleting twice succeeds twice.
	if _, err := c.Provisioning.DeleteMuteTiming(provisioning.NewDeleteMuteTimingParams().WithName("nights").WithVersion(&v1)); status(err) != http.StatusConflict {
		t.Errorf("DELETE with a stale version: %v, want 409", err)
	}
	for i := 0; i < 2; i++ {
		if _, err := c.Provisioning.DeleteMuteTiming(provisioning.NewDeleteMuteTimingParams().WithName("nights").WithVersion(&v2)); err != nil {
			t.Errorf("DELETE %d: %v", i+1, err)
		}
	}
	if _, ok := s.MuteTiming("nights"); ok {
		t.Error("deleted timing still stored")
	}
}

func TestMuteTimingValidation(t *testing.T) {
	tests := []struct {
		name string
		item models.TimeIntervalItem
		ok   bool
	}{
		{"whole day", models.TimeIntervalItem{Times: []*models.TimeIntervalTimeRange{{StartTime: "00:00", EndTime: "24:00"}}}, true},
		{"no intervals at all", models.TimeIntervalItem{}, true},
		{"end before start", models.TimeIntervalItem{Times: []*models.TimeIntervalTimeRange{{StartTime: "04:00", EndTime: "02:00"}}}, false},
		{"empty range", models.TimeIntervalItem{Times: []*models.TimeIntervalTimeRange{{StartTime: "04:00", EndTime: "04:00"}}}, false},
		{"missing end", models.TimeIntervalItem{Times: []*models.TimeIntervalTimeRange{{StartTime: "04:00"}}}, false},
		{"bad clock", models.TimeIntervalItem{Times: []*models.TimeIntervalTimeRange{{StartTime: "4:00", EndTime: "05:00"}}}, false},
		{"past midnight", models.TimeIntervalItem{Times: []*models.TimeIntervalTimeRange{{StartTime: "23:00", EndTime: "24:30"}}}, false},
		{"weekday range", models.TimeIntervalItem{Weekdays: []string{"Monday:friday"}}, true},
		{"weekday backwards", models.TimeIntervalItem{Weekdays: []string{"friday:monday"}}, false},
		{"unknown weekday", models.TimeIntervalItem{Weekdays: []string{"funday"}}, false},
		{"whole month", models.TimeIntervalItem{DaysOfMonth: []string{"1:-1"}}, true},
		{"last days", models.TimeIntervalItem{DaysOfMonth: []string{"-3:-1"}}, true},
		{"days backwards", models.TimeIntervalItem{DaysOfMonth: []string{"-1:-3"}}, false},
		{"from the end to a day", models.TimeIntervalItem{DaysOfMonth: []string{"-3:5"}}, false},
		{"never in a short month", models.TimeIntervalItem{DaysOfMonth: []string{"27:-3"}}, false},
		{"three-part range", models.TimeIntervalItem{DaysOfMonth: []string{"1:2:3"}}, false},
		{"weekday number", models.TimeIntervalItem{Weekdays: []string{"1"}}, false},
		{"day zero", models.TimeIntervalItem{DaysOfMonth: []string{"0"}}, false},
		{"day 32", models.TimeIntervalItem{DaysOfMonth: []string{"32"}}, false},
		{"months by name and number", models.TimeIntervalItem{Months: []string{"may:june", "12"}}, true},
		{"month 13", models.TimeIntervalItem{Months: []string{"13"}}, false},
		{"years backwards", models.TimeIntervalItem{Years: []string{"2027:2026"}}, false},
		{"years", models.TimeIntervalItem{Years: []string{"2026:2027"}}, true},
		{"unknown location", models.TimeIntervalItem{Location: "Nowhere/Atlantis"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := setup(t)
			item := tt.item
			mt := &models.MuteTimeInterval{Name: "m", TimeIntervals: []*models.TimeIntervalItem{&item}}
			_, err := c.Provisioning.PostMuteTiming(provisioning.NewPostMuteTimingParams().WithBody(mt))
			want := http.StatusBadRequest
			if tt.ok {
				want = 0
			}
			if got := status(err); got != want {
				t.Fatalf("POST: %v, want status %d", err, want)
			}
			if err := s.AddMuteTiming(&models.MuteTimeInterval{Name: "seeded", TimeIntervals: mt.TimeIntervals}); (err == nil) != tt.ok {
				t.Errorf("AddMuteTiming: %v", err)
			}
		})
	}
	t.Run("empty name", func(t *testing.T) {
		_, c := setup(t)
		_, err := c.Provisioning.PostMuteTiming(provisioning.NewPostMuteTimingParams().WithBody(weekendNights(" ")))
		if status(err) != http.StatusBadRequest {
			t.Errorf("POST: %v, want 400", err)
		}
	})
}

// TestTimeIntervalReferences: routes and rule notification settings may
// name a stored mute timing, as mute or as active interval, and nothing
// else; a timing in use cannot be deleted.
func TestTimeIntervalReferences(t *testing.T) {
	policy := func(child string) string {
		return `{"receiver": "grafana-default-email", "routes": [` + child + `]}`
	}
	tests := []struct {
		name string
		// write sends the reference to "m" and returns the status.
		write func(t *testing.T, s *Server) int
		// unwrite removes it again.
		unwrite func(t *testing.T, s *Server)
	}{
		{"route mute", func(t *testing.T, s *Server) int {
			code, _ := call(t, s, http.MethodPut, "/api/v1/provisioning/policies", policy(`{"mute_time_intervals": ["m"]}`))
			return code
		}, resetPolicy},
		{"route active", func(t *testing.T, s *Server) int {
			code, _ := call(t, s, http.MethodPut, "/api/v1/provisioning/policies", policy(`{"active_time_intervals": ["m"]}`))
			return code
		}, resetPolicy},
		{"nested route", func(t *testing.T, s *Server) int {
			code, _ := call(t, s, http.MethodPut, "/api/v1/provisioning/policies", policy(`{"routes": [{"mute_time_intervals": ["m"]}]}`))
			return code
		}, resetPolicy},
		{"seeded tree", func(t *testing.T, s *Server) int {
			if err := s.SetPolicyJSON(policy(`{"mute_time_intervals": ["m"]}`)); err != nil {
				return http.StatusBadRequest
			}
			return http.StatusAccepted
		}, resetPolicy},
		{"rule mute", func(t *testing.T, s *Server) int {
			return postMutedRule(t, s, &models.AlertRuleNotificationSettings{Receiver: ptr(DefaultReceiver), MuteTimeIntervals: []string{"m"}})
		}, deleteRule},
		{"rule active", func(t *testing.T, s *Server) int {
			return postMutedRule(t, s, &models.AlertRuleNotificationSettings{Receiver: ptr(DefaultReceiver), ActiveTimeIntervals: []string{"m"}})
		}, deleteRule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := setup(t)
			if code := tt.write(t, s); code != http.StatusBadRequest {
				t.Fatalf("reference to an unknown timing: %d, want 400", code)
			}
			if err := s.AddMuteTiming(weekendNights("m")); err != nil {
				t.Fatal(err)
			}
			if code := tt.write(t, s); code >= 300 {
				t.Fatalf("reference to a stored timing: %d", code)
			}
			if code, body := send(t, s, http.MethodDelete, "/mute-timings/m", nil, false); code != http.StatusConflict {
				t.Errorf("DELETE in use: %d %s, want 409", code, body)
			}
			tt.unwrite(t, s)
			if code, body := send(t, s, http.MethodDelete, "/mute-timings/m", nil, false); code != http.StatusNoContent {
				t.Errorf("DELETE unused: %d %s, want 204", code, body)
			}
		})
	}
	t.Run("root route", func(t *testing.T) {
		s, _ := setup(t)
		if err := s.AddMuteTiming(weekendNights("m")); err != nil {
			t.Fatal(err)
		}
		tree := `{"receiver": "grafana-default-email", "mute_time_intervals": ["m"]}`
		if code, _ := call(t, s, http.MethodPut, "/api/v1/provisioning/policies", tree); code != http.StatusBadRequest {
			t.Errorf("root with a mute timing: %d, want 400", code)
		}
	})
}

func postMutedRule(t *testing.T, s *Server, ns *models.AlertRuleNotificationSettings) int {
	t.Helper()
	r := validRule("r1", "g", "rule")
	r.NotificationSettings = ns
	code, _ := send(t, s, http.MethodPost, "/alert-rules", r, false)
	return code
}

func resetPolicy(t *testing.T, s *Server) {
	t.Helper()
	if code, body := send(t, s, http.MethodDelete, "/policies", nil, false); code != http.StatusAccepted {
		t.Fatalf("reset policy: %d %s", code, body)
	}
}

func deleteRule(t *testing.T, s *Server) {
	t.Helper()
	if code, body := send(t, s, http.MethodDelete, "/alert-rules/r1", nil, false); code != http.StatusNoContent {
		t.Fatalf("delete rule: %d %s", code, body)
	}
}
