package main

import (
	"encoding/json"
	"testing"
	"time"
)

func TestLogDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{`"967.5ms"`, 967500 * time.Microsecond, true},
		{`"1.2s"`, 1200 * time.Millisecond, true},
		{`0.97`, 970 * time.Millisecond, true},
		{`"soon"`, 0, false},
		{`true`, 0, false},
	}
	for _, tt := range tests {
		var d logDuration
		err := json.Unmarshal([]byte(tt.in), &d)
		if (err == nil) != tt.ok || (tt.ok && time.Duration(d) != tt.want) {
			t.Errorf("%s: got %v, %v; want %v (ok %v)", tt.in, time.Duration(d), err, tt.want, tt.ok)
		}
	}
}
