package main

import (
	"math"
	"testing"
)

func TestGrowth(t *testing.T) {
	mib := func(vs ...float64) []memorySample {
		out := make([]memorySample, len(vs))
		for i, v := range vs {
			out[i] = memorySample{RSSBytes: v * (1 << 20)}
		}
		return out
	}
	cases := []struct {
		name    string
		samples []memorySample
		pct     float64
	}{
		{"flat, swinging with checkpoints", mib(150, 190, 160, 150, 190, 160, 150, 190, 160), 0},
		{"flat, one checkpoint in flight at the end", mib(34, 33, 35, 34, 33, 34, 33, 67, 34), 0},
		{"leaking 10 MiB a sample", mib(100, 110, 120, 130, 140, 150), (145 - 105) / 105.0 * 100},
		{"one sample", mib(100), 0},
		{"shrinking", mib(200, 200, 100, 100), -50},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := growth(tc.samples, func(s memorySample) float64 { return s.RSSBytes })
			if math.Abs(g.pct-tc.pct) > 1e-9 {
				t.Fatalf("growth %.3f%%, want %.3f%% (%s)", g.pct, tc.pct, g)
			}
		})
	}
}
