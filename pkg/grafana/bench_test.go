package grafana

import (
	"context"
	"fmt"
	"testing"

	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/grafana/grafanatest"
)

// BenchmarkReconcile100Regions measures a reconcile of 100 regions (with a
// routing-key route, so 4 rules per region) against the strict fake Grafana
// over loopback HTTP: the first one, which creates everything, and a no-op
// one over an up-to-date Grafana, which must send no write.
func BenchmarkReconcile100Regions(b *testing.B) {
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprintf("region-%03d", i)
	}
	rs := regions(names...)
	setup := func(b *testing.B) (*grafanatest.Server, *Reconciler) {
		srv := grafanatest.New()
		cfg := loadConfig(b, srv.URL, "", "", testEnv(srv))
		r, err := New(cfg, zap.NewNop(), nil, WithHTTPClient(srv.HTTPClient()))
		if err != nil {
			b.Fatal(err)
		}
		return srv, r
	}
	ctx := context.Background()

	b.Run("first", func(b *testing.B) {
		var requests, writes int
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			srv, r := setup(b)
			b.StartTimer()
			if _, err := r.Apply(ctx, rs); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			requests += len(srv.Requests())
			writes += srv.Writes()
			srv.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
		b.ReportMetric(float64(writes)/float64(b.N), "writes/op")
	})

	b.Run("noop", func(b *testing.B) {
		srv, r := setup(b)
		defer srv.Close()
		if _, err := r.Apply(ctx, rs); err != nil {
			b.Fatal(err)
		}
		srv.ResetLog()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			p, err := r.Apply(ctx, rs)
			if err != nil || !p.Empty() {
				b.Fatalf("no-op reconcile: %v\n%s", err, p)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(len(srv.Requests()))/float64(b.N), "requests/op")
		b.ReportMetric(float64(srv.Writes())/float64(b.N), "writes/op")
	})
}
