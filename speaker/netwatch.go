package speaker

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/portico-lb/portico/internal/layer2"
)

// linkState is a snapshot of the node's links, read with netlink.
type linkState struct {
	links    []layer2.Link
	prefixes map[string][]netip.Prefix
	names    []string          // every link, sorted
	macs     map[string]string // link name -> MAC
	// hostOnly holds the indexes of loopback and dummy links, whose host
	// addresses (/32, /128) are neither read nor watched: see isHostOnly.
	hostOnly map[int]bool
}

// isHostOnly reports whether an address on link index is a host address on
// a loopback or dummy link. kube-proxy in IPVS mode puts every Service IP on
// the dummy link kube-ipvs0 (the lab's stand-in does the same on lo), so a
// cluster with 10,000 Services has 10,000 such addresses on every node. They
// never face a router or carry an L2 segment, so no decision reads them;
// re-reading every address for each one added cost time and garbage
// quadratic in the number of Services.
func (st linkState) isHostOnly(index int, ipNet *net.IPNet) bool {
	if ipNet == nil || !st.hostOnly[index] {
		return false
	}
	ones, bits := ipNet.Mask.Size()
	return ones == bits
}

// netWatcher keeps a linkState current from netlink link and address
// notifications (and a periodic re-read, in case a notification is lost).
type netWatcher struct {
	netns  func(func() error) error
	onMove func() // called after the state changed
	log    *slog.Logger

	mu    sync.Mutex
	state linkState
	err   error
	reads int // link reads so far
}

// resyncInterval is how often links are re-read without a notification.
const resyncInterval = 10 * time.Second

// run subscribes and re-reads until ctx ends. A subscription that fails is
// renewed at the next periodic re-read.
func (w *netWatcher) run(ctx context.Context) {
	var linkCh chan netlink.LinkUpdate
	var addrCh chan netlink.AddrUpdate
	onErr := func(err error) {
		if ctx.Err() == nil {
			w.log.Warn("netlink subscription error; resubscribing", "error", err)
		}
	}
	// subscribe renews whichever subscription is missing.
	subscribe := func() {
		err := w.netns(func() error {
			if linkCh == nil {
				lc := make(chan netlink.LinkUpdate, 64)
				if err := netlink.LinkSubscribeWithOptions(lc, ctx.Done(), netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
					return err
				}
				linkCh = lc
			}
			if addrCh == nil {
				ac := make(chan netlink.AddrUpdate, 64)
				if err := netlink.AddrSubscribeWithOptions(ac, ctx.Done(), netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
					return err
				}
				addrCh = ac
			}
			return nil
		})
		if err != nil {
			w.log.Error("cannot watch links with netlink; carrier changes are noticed only every "+resyncInterval.String(), "error", err)
		}
	}
	subscribe()
	w.refresh()
	t := time.NewTicker(resyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-linkCh:
			if !ok { // the subscription ended (its channel is closed)
				linkCh = nil
			}
		case u, ok := <-addrCh:
			if !ok {
				addrCh = nil
			} else if w.ignored(u) && !w.pending(addrCh) {
				continue
			}
		case <-t.C:
			if linkCh == nil || addrCh == nil {
				subscribe()
			}
		}
		drain(linkCh)
		drain(addrCh)
		w.refresh()
	}
}

// ignored reports whether an address notification concerns an address
// readLinks leaves out.
func (w *netWatcher) ignored(u netlink.AddrUpdate) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state.isHostOnly(u.LinkIndex, &u.LinkAddress)
}

// pending drains the address notifications already queued and reports
// whether any of them is not ignored.
func (w *netWatcher) pending(ch chan netlink.AddrUpdate) bool {
	for {
		select {
		case u, ok := <-ch:
			if !ok || !w.ignored(u) {
				return true
			}
		default:
			return false
		}
	}
}

// drain empties ch without blocking; a nil or closed ch is left alone.
func drain[T any](ch chan T) {
	for ch != nil {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// refresh re-reads the links and calls onMove when anything changed.
func (w *netWatcher) refresh() {
	var st linkState
	err := w.netns(func() error {
		var err error
		st, err = readLinks()
		return err
	})
	w.mu.Lock()
	w.reads++
	changed := err == nil && !sameState(w.state, st)
	if err == nil {
		w.state = st
	}
	w.err = err
	w.mu.Unlock()
	if err != nil {
		w.log.Warn("reading links", "error", err)
	}
	if changed {
		w.onMove()
	}
}

// current returns the latest state and the last read error.
func (w *netWatcher) current() (linkState, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state, w.err
}

// readLinks reads the links and addresses of the calling thread's namespace.
func readLinks() (linkState, error) {
	links, err := layer2.Links()
	if err != nil {
		return linkState{}, err
	}
	nl, err := netlink.LinkList()
	if err != nil {
		return linkState{}, err
	}
	byIndex := map[int]string{}
	st := linkState{prefixes: map[string][]netip.Prefix{}, macs: map[string]string{}, hostOnly: map[int]bool{}}
	for _, l := range nl {
		byIndex[l.Attrs().Index] = l.Attrs().Name
		if l.Type() == "dummy" || l.Attrs().Flags&net.FlagLoopback != 0 {
			st.hostOnly[l.Attrs().Index] = true
		}
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return linkState{}, err
	}
	for _, a := range addrs {
		if a.IPNet == nil || st.isHostOnly(a.LinkIndex, a.IPNet) {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		name := byIndex[a.LinkIndex]
		st.prefixes[name] = append(st.prefixes[name], netip.PrefixFrom(ip.Unmap(), ones))
	}
	for _, p := range st.prefixes {
		slices.SortFunc(p, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	}
	slices.SortFunc(links, func(a, b layer2.Link) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	st.links = links
	for _, l := range links {
		st.names = append(st.names, l.Name)
		if len(l.HardwareAddr) > 0 {
			st.macs[l.Name] = l.HardwareAddr.String()
		}
	}
	return st, nil
}

func sameState(a, b linkState) bool {
	if len(a.links) != len(b.links) || !slices.Equal(a.names, b.names) {
		return false
	}
	for i := range a.links {
		x, y := a.links[i], b.links[i]
		if x.Name != y.Name || x.Kind != y.Kind || x.Up != y.Up || x.Loopback != y.Loopback ||
			x.Enslaved != y.Enslaved || x.HardwareAddr.String() != y.HardwareAddr.String() {
			return false
		}
	}
	if len(a.prefixes) != len(b.prefixes) {
		return false
	}
	for k, v := range a.prefixes {
		if !slices.Equal(v, b.prefixes[k]) {
			return false
		}
	}
	return true
}
