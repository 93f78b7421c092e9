package layer2

import "sync/atomic"

// Metrics counts what the announcer saw and sent, over all interfaces. The zero
// value is ready to use; the speaker exports the counters (for example through
// prometheus.NewCounterFunc). All fields are safe for concurrent use.
type Metrics struct {
	// ARPRequests counts well-formed ARP requests read on any responder's
	// socket, whether or not the target is owned.
	ARPRequests atomic.Uint64
	// ARPReplies counts ARP replies sent for owned IPs.
	ARPReplies atomic.Uint64
	// NDPSolicitations counts well-formed neighbor solicitations read.
	NDPSolicitations atomic.Uint64
	// NDPAdvertisements counts solicited neighbor advertisements sent.
	NDPAdvertisements atomic.Uint64
	// Gratuitous counts gratuitous ARP packets and unsolicited neighbor
	// advertisements sent on takeover.
	Gratuitous atomic.Uint64
	// Malformed counts packets that could not be decoded or failed validation.
	Malformed atomic.Uint64
	// SendErrors counts packets that could not be written.
	SendErrors atomic.Uint64
}
