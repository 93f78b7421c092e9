package speaker

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// registerMetrics exports the announcer's counters and the speaker's gauges.
// A collector that is already registered (a second speaker in one process)
// is logged and skipped.
func registerMetrics(reg prometheus.Registerer, s *Speaker) {
	m := s.l2.ann.Metrics()
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "portico", Subsystem: "speaker", Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	gauge := func(name, help string, f func() int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "portico", Subsystem: "speaker", Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	for _, c := range []prometheus.Collector{
		counter("arp_requests_received_total", "ARP requests received on announcing interfaces.", &m.ARPRequests),
		counter("arp_replies_sent_total", "ARP replies sent for owned IPs.", &m.ARPReplies),
		counter("ndp_solicitations_received_total", "NDP neighbor solicitations received on announcing interfaces.", &m.NDPSolicitations),
		counter("ndp_advertisements_sent_total", "Solicited NDP neighbor advertisements sent for owned IPs.", &m.NDPAdvertisements),
		counter("gratuitous_sent_total", "Gratuitous ARP and unsolicited neighbor advertisements sent on takeover.", &m.Gratuitous),
		counter("malformed_packets_total", "ARP/NDP packets that could not be decoded.", &m.Malformed),
		counter("send_errors_total", "ARP/NDP packets that could not be sent.", &m.SendErrors),
		gauge("l2_ips_owned", "Service IPs this node answers ARP/NDP for.", func() int { return len(s.Owned()) }),
		gauge("members", "Live memberlist members seen by this speaker, itself included.", func() int {
			s.mu.Lock()
			defer s.mu.Unlock()
			return len(s.members)
		}),
		bgpCollector{s.bgp},
	} {
		if err := reg.Register(c); err != nil {
			s.log.Warn("registering a metric", "error", err)
		}
	}
}

// bgpCollector exports one series per BGP session, read from the announcer
// at scrape time.
type bgpCollector struct{ b *bgpProtocol }

var (
	bgpSessionUp = prometheus.NewDesc("portico_speaker_bgp_session_up",
		"1 when the BGP session to the peer is Established.", []string{"peer", "address"}, nil)
	bgpPrefixes = prometheus.NewDesc("portico_speaker_bgp_prefixes_advertised",
		"Prefixes advertised to the peer.", []string{"peer", "address"}, nil)
	bgpUpdates = prometheus.NewDesc("portico_speaker_bgp_updates_sent_total",
		"BGP UPDATE messages sent to the peer.", []string{"peer", "address"}, nil)
	bfdUp = prometheus.NewDesc("portico_speaker_bfd_session_up",
		"1 when the BFD session to the peer is Up, 0 otherwise; absent without BFD.", []string{"peer", "address"}, nil)
)

func (c bgpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{bgpSessionUp, bgpPrefixes, bgpUpdates, bfdUp} {
		ch <- d
	}
}

func (c bgpCollector) Collect(ch chan<- prometheus.Metric) {
	boolean := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, s := range c.b.ann.Sessions() {
		addr := ""
		if s.Address.IsValid() {
			addr = s.Address.String()
		}
		ch <- prometheus.MustNewConstMetric(bgpSessionUp, prometheus.GaugeValue, boolean(s.State == "Established"), s.Peer, addr)
		ch <- prometheus.MustNewConstMetric(bgpPrefixes, prometheus.GaugeValue, float64(s.PrefixesAdvertised), s.Peer, addr)
		ch <- prometheus.MustNewConstMetric(bgpUpdates, prometheus.CounterValue, float64(s.UpdatesSent), s.Peer, addr)
		if s.BFDState != "" {
			ch <- prometheus.MustNewConstMetric(bfdUp, prometheus.GaugeValue, boolean(s.BFDState == "Up"), s.Peer, addr)
		}
	}
}
