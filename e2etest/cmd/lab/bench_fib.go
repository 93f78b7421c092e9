package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// fibWatch follows a namespace's kernel routing table (the lab router's,
// where zebra installs what BGP chose) through netlink notifications, so
// that a route gaining or losing next hops is timed when the kernel changes
// it, without polling FRR (a vtysh call costs about 35 ms). zebra installs
// routes through nexthop objects: a route names a group by id, and the
// group lists the next hops, so the watch follows both.
type fibWatch struct {
	sock *nl.NetlinkSocket

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	groups  map[uint32]int
	routes  map[netip.Prefix]*fibEntry
	err     error
	closed  bool
}

// fibEntry is one route of the main table: its next hops are the group
// nhID's, or its own (ownHops: a gateway or a multipath list).
type fibEntry struct {
	nhID    uint32
	ownHops int
	hops    int       // what the kernel forwards over; 0 once deleted
	since   time.Time // when hops last changed
}

// Netlink numbers golang.org/x/sys/unix does not name.
const (
	rtnlgrpNexthop = 32 // RTNLGRP_NEXTHOP
	rtaNHID        = 30 // RTA_NH_ID
	nhaID          = 1  // NHA_ID
	nhaGroup       = 2  // NHA_GROUP
	nhaBlackhole   = 4  // NHA_BLACKHOLE
	sizeofNhmsg    = 8
	sizeofNhGrp    = 8
)

// watchFIB subscribes to route and nexthop changes in namespace ns and
// reads the nexthop objects that already exist.
func watchFIB(ns string) (*fibWatch, error) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("opening namespace %s: %w", ns, err)
	}
	defer h.Close()
	sock, err := nl.SubscribeAt(h, netns.None(), unix.NETLINK_ROUTE,
		unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE, rtnlgrpNexthop)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", ns, err)
	}
	_ = sock.SetReceiveBufferSize(4<<20, true)
	w := &fibWatch{sock: sock, changed: make(chan struct{}), groups: map[uint32]int{}, routes: map[netip.Prefix]*fibEntry{}}
	req := nl.NewNetlinkRequest(unix.RTM_GETNEXTHOP, unix.NLM_F_DUMP)
	req.AddRawData(make([]byte, sizeofNhmsg))
	if err := sock.Send(req); err != nil {
		sock.Close()
		return nil, fmt.Errorf("netlink in %s: dumping nexthops: %w", ns, err)
	}
	go w.read()
	return w, nil
}

// Close stops the watch.
func (w *fibWatch) Close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	w.sock.Close()
}

func (w *fibWatch) read() {
	for {
		msgs, _, err := w.sock.Receive()
		at := time.Now()
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return
		}
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				w.mu.Unlock()
				continue
			}
			// ENOBUFS: notifications were lost, the picture is wrong.
			w.err = fmt.Errorf("route notifications: %w", err)
			w.signal()
			w.mu.Unlock()
			return
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
				w.route(m, at)
			case unix.RTM_NEWNEXTHOP, unix.RTM_DELNEXTHOP:
				w.nexthop(m, at)
			}
		}
		w.signal()
		w.mu.Unlock()
	}
}

func (w *fibWatch) signal() {
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *fibWatch) route(m syscall.NetlinkMessage, at time.Time) {
	if len(m.Data) < unix.SizeofRtMsg {
		return
	}
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
	dstLen, table, typ := int(m.Data[1]), uint32(m.Data[4]), m.Data[7]
	attrs, err := nl.ParseRouteAttr(m.Data[unix.SizeofRtMsg:])
	if err != nil || typ != unix.RTN_UNICAST {
		return
	}
	var dst netip.Addr
	e := &fibEntry{}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_TABLE:
			table = native.Uint32(a.Value)
		case unix.RTA_DST:
			dst, _ = netip.AddrFromSlice(a.Value)
		case unix.RTA_GATEWAY, unix.RTA_VIA:
			e.ownHops = max(e.ownHops, 1)
		case unix.RTA_MULTIPATH:
			e.ownHops = countMultipath(a.Value)
		case rtaNHID:
			e.nhID = native.Uint32(a.Value)
		}
	}
	if table != unix.RT_TABLE_MAIN || !dst.IsValid() {
		return
	}
	p := netip.PrefixFrom(dst.Unmap(), dstLen)
	if m.Header.Type == unix.RTM_DELROUTE {
		e = &fibEntry{}
	}
	w.set(p, e, at)
}

// set records p's new state, keeping since when the number of next hops
// did not change.
func (w *fibWatch) set(p netip.Prefix, e *fibEntry, at time.Time) {
	e.hops = e.ownHops
	if e.nhID != 0 {
		e.hops = w.groups[e.nhID]
	}
	e.since = at
	if old := w.routes[p]; old != nil && old.hops == e.hops {
		e.since = old.since
	}
	w.routes[p] = e
}

// countMultipath counts the rtnexthop entries of an RTA_MULTIPATH value.
func countMultipath(b []byte) int {
	n := 0
	for len(b) >= unix.SizeofRtNexthop {
		l := int(native.Uint16(b))
		if l < unix.SizeofRtNexthop || l > len(b) {
			break
		}
		n++
		b = b[min(len(b), (l+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1)):]
	}
	return n
}

func (w *fibWatch) nexthop(m syscall.NetlinkMessage, at time.Time) {
	if len(m.Data) < sizeofNhmsg {
		return
	}
	attrs, err := nl.ParseRouteAttr(m.Data[sizeofNhmsg:])
	if err != nil {
		return
	}
	var id uint32
	hops := 1
	for _, a := range attrs {
		switch a.Attr.Type {
		case nhaID:
			id = native.Uint32(a.Value)
		case nhaGroup:
			hops = len(a.Value) / sizeofNhGrp
		case nhaBlackhole:
			hops = 0
		}
	}
	if id == 0 {
		return
	}
	if m.Header.Type == unix.RTM_DELNEXTHOP {
		delete(w.groups, id)
		return
	}
	if w.groups[id] == hops {
		return
	}
	w.groups[id] = hops
	// A group replaced in place changes every route that uses it.
	for p, e := range w.routes {
		if e.nhID == id {
			w.set(p, &fibEntry{nhID: id, ownHops: e.ownHops}, at)
		}
	}
}

// wait waits until the kernel forwards p over exactly hops next hops (0:
// p is gone), reached at or after after, and returns when that happened.
func (w *fibWatch) wait(ctx context.Context, p netip.Prefix, hops int, after time.Time) (time.Time, error) {
	for {
		w.mu.Lock()
		e, ch, err := w.routes[p], w.changed, w.err
		w.mu.Unlock()
		if err != nil {
			return time.Time{}, err
		}
		if e != nil && e.hops == hops && !e.since.Before(after) {
			return e.since, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			state := "no route"
			if e != nil {
				state = fmt.Sprintf("%d next hops since %s", e.hops, e.since.Format(time.StampMilli))
			}
			return time.Time{}, fmt.Errorf("the router's kernel never forwarded %s over %d next hops after %s (last: %s)",
				p, hops, after.Format(time.StampMilli), state)
		}
	}
}

var native = binary.NativeEndian
