package controller

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics, registered once in controller-runtime's registry and served on the
// manager's metrics endpoint.
var (
	metricPoolTotal = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "portico_pool_addresses_total",
		Help: "Addresses a pool may allocate, per family (saturated at 2^63-1).",
	}, []string{"pool", "family"})
	metricPoolInUse = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "portico_pool_addresses_in_use",
		Help: "Addresses of a pool held by Services, per family.",
	}, []string{"pool", "family"})
	metricAllocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portico_allocations_total",
		Help: "Addresses allocated to Services, per pool and family.",
	}, []string{"pool", "family"})
	metricFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portico_allocation_failures_total",
		Help: "Failed allocations, by reason (ipam reason tokens, or Invalid for a bad Service request).",
	}, []string{"reason"})
	metricReconcile = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "portico_reconcile_duration_seconds",
		Help:    "Time spent in one reconcile, per controller.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
	}, []string{"controller"})
	registerOnce sync.Once
)

func registerMetrics() {
	registerOnce.Do(func() {
		metrics.Registry.MustRegister(metricPoolTotal, metricPoolInUse, metricAllocations, metricFailures, metricReconcile)
	})
}
