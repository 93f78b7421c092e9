package controller_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/portico-lb/portico/controller"
)

// TestMetrics scrapes the controller's real metrics endpoint after an
// allocation and a failure. The registry is shared by every manager in this
// process, so counters are compared before and after, and gauges are read
// for this test's own pool.
func TestMetrics(t *testing.T) {
	pool(t, "metrics", nil, "192.0.2.0/31", "2001:db8:5::/126")
	addr := freeAddr(t)
	run(t, controller.Options{MetricsBindAddress: addr})
	url := "http://" + addr + "/metrics"
	var before map[string]float64
	eventually(t, func() string {
		if before = scrape(t, url); len(before) == 0 {
			return "the metrics endpoint " + url + " does not answer"
		}
		return ""
	})

	ns := namespace(t, nil)
	service(t, ns, "a", nil)
	waitIPs(t, ns, "a", "192.0.2.0")
	service(t, ns, "b", nil)
	waitIPs(t, ns, "b", "192.0.2.1")
	service(t, ns, "c", nil) // the pool has no third IPv4 address
	waitEvent(t, ns, "c", controller.EventAllocationFailed, "no free IPv4")

	eventually(t, func() string {
		m := scrape(t, url)
		checks := []struct {
			series string
			want   float64
		}{
			{`portico_pool_addresses_total{family="IPv4",pool="metrics"}`, 2},
			{`portico_pool_addresses_total{family="IPv6",pool="metrics"}`, 4},
			{`portico_pool_addresses_in_use{family="IPv4",pool="metrics"}`, 2},
			{`portico_pool_addresses_in_use{family="IPv6",pool="metrics"}`, 0},
			{`portico_allocations_total{family="IPv4",pool="metrics"}`, 2},
			{`portico_allocation_failures_total{reason="PoolExhausted"}`, before[`portico_allocation_failures_total{reason="PoolExhausted"}`] + 1},
		}
		for _, c := range checks {
			if got, ok := m[c.series]; !ok || got != c.want {
				return fmt.Sprintf("%s = %v (present %v), want %v", c.series, got, ok, c.want)
			}
		}
		if n := m[`portico_reconcile_duration_seconds_count{controller="service"}`]; n <= before[`portico_reconcile_duration_seconds_count{controller="service"}`] {
			return fmt.Sprintf("service reconcile count did not grow: %v", n)
		}
		if m[`portico_reconcile_duration_seconds_count{controller="config"}`] == 0 {
			return "no config reconcile was timed"
		}
		return ""
	})
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrape reads the Prometheus text format into series -> value. A failed
// scrape returns an empty map (the server may not be listening yet).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	resp, err := http.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
