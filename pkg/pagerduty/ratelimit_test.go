package pagerduty

import (
	"testing"
	"time"
)

func TestSendBudget(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type op struct {
		kind     string // reserve, finish, release
		key      string
		sec      int
		wantOK   bool
		wantWait time.Duration
	}
	tests := []struct {
		name  string
		limit int
		ops   []op
	}{
		{"under the limit", 2, []op{
			{kind: "reserve", key: "a", sec: 0, wantOK: true},
			{kind: "finish", key: "a", sec: 1},
			{kind: "reserve", key: "a", sec: 1, wantOK: true},
		}},
		{"full: wait until the oldest completion leaves the window", 2, []op{
			{kind: "reserve", key: "a", sec: 0, wantOK: true},
			{kind: "finish", key: "a", sec: 2},
			{kind: "reserve", key: "a", sec: 5, wantOK: true},
			{kind: "finish", key: "a", sec: 6},
			{kind: "reserve", key: "a", sec: 10, wantWait: 52 * time.Second},
			{kind: "reserve", key: "a", sec: 61, wantWait: time.Second},
			{kind: "reserve", key: "a", sec: 62, wantOK: true},
		}},
		{"keys are independent", 1, []op{
			{kind: "reserve", key: "a", sec: 0, wantOK: true},
			{kind: "reserve", key: "b", sec: 0, wantOK: true},
			{kind: "reserve", key: "a", sec: 0, wantWait: busyPoll},
		}},
		{"requests in flight count", 1, []op{
			{kind: "reserve", key: "a", sec: 0, wantOK: true},
			{kind: "reserve", key: "a", sec: 100, wantWait: busyPoll},
			{kind: "finish", key: "a", sec: 100},
			{kind: "reserve", key: "a", sec: 159, wantWait: time.Second},
		}},
		{"a released reservation frees its slot", 1, []op{
			{kind: "reserve", key: "a", sec: 0, wantOK: true},
			{kind: "release", key: "a"},
			{kind: "reserve", key: "a", sec: 0, wantOK: true},
		}},
		{"out-of-order completions stay sorted", 2, []op{
			{kind: "reserve", key: "a", sec: 0, wantOK: true},
			{kind: "reserve", key: "a", sec: 0, wantOK: true},
			{kind: "finish", key: "a", sec: 30},
			{kind: "finish", key: "a", sec: 20},
			{kind: "reserve", key: "a", sec: 40, wantWait: 40 * time.Second},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newSendBudget(tt.limit, time.Minute)
			for i, o := range tt.ops {
				switch o.kind {
				case "reserve":
					ok, wait := b.reserve(o.key, at(o.sec))
					if ok != o.wantOK || wait != o.wantWait {
						t.Fatalf("op %d: reserve = %v, %v; want %v, %v", i, ok, wait, o.wantOK, o.wantWait)
					}
				case "finish":
					b.finish(o.key, at(o.sec))
				case "release":
					b.release(o.key)
				}
			}
		})
	}
}

func BenchmarkSendBudget(b *testing.B) {
	budget := newSendBudget(120, time.Minute)
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(500 * time.Millisecond)
		if ok, _ := budget.reserve("k", now); ok {
			budget.finish("k", now)
		}
	}
}
