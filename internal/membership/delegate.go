package membership

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// The memberlist node metadata carries a small header before the user's
// Meta: a format version and flags. The only flag marks a member that is
// leaving on purpose, so that the others can tell a leave from a death
// (memberlist's public API does not say which one it saw).
const (
	metaVersion   = 1
	metaHeaderLen = 2
	flagLeaving   = 1 << 0
)

func encodeMeta(user []byte, leaving bool) []byte {
	var flags byte
	if leaving {
		flags |= flagLeaving
	}
	return append([]byte{metaVersion, flags}, user...)
}

// decodeMeta splits memberlist metadata; unknown formats yield no user meta.
func decodeMeta(b []byte) (user []byte, leaving bool) {
	if len(b) < metaHeaderLen || b[0] != metaVersion {
		return nil, false
	}
	return slices.Clone(b[metaHeaderLen:]), b[1]&flagLeaving != 0
}

// conflictReportInterval rate-limits reports of one conflict: memberlist
// sees it again on every gossip of the newcomer.
const conflictReportInterval = time.Minute

// delegate receives memberlist's callbacks. memberlist calls the event and
// conflict methods while holding its node lock, so they only record and
// queue: nothing here may call back into memberlist.
type delegate struct{ m *Membership }

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*delegate)(nil)
	_ memberlist.ConflictDelegate = (*delegate)(nil)
)

func (d *delegate) NodeMeta(limit int) []byte {
	d.m.metaMu.Lock()
	defer d.m.metaMu.Unlock()
	b := encodeMeta(d.m.meta, d.m.leaving)
	if len(b) > limit { // New and SetMeta prevent this; memberlist panics on it
		return encodeMeta(nil, d.m.leaving)
	}
	return b
}

func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// stateView is what a member sends with every state exchange: its name and
// the address it knows for each live member. A receiver learns from it
// whether the sender knows the receiver's name at the receiver's address or
// at another speaker's (see NameConflict). memberlist's own state lists
// the same addresses but not who sent them.
type stateView struct {
	From    string            `json:"from"`
	Members map[string]string `json:"members"`
}

func (d *delegate) LocalState(join bool) []byte {
	m := d.m
	v := stateView{From: m.name, Members: map[string]string{}}
	m.mu.Lock()
	for name, mem := range m.members {
		v.Members[name] = mem.Addr.String()
	}
	m.mu.Unlock()
	b, _ := json.Marshal(v)
	return b
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	m := d.m
	var v stateView
	if err := json.Unmarshal(buf, &v); err != nil || v.From == "" {
		m.log.Debug("ignoring a member's state it cannot read", "error", err)
		return
	}
	if v.From == m.name {
		return // the other claimant of this name: its view settles nothing
	}
	held, _ := netip.ParseAddrPort(v.Members[m.name]) // invalid: it knows no one by this name
	m.mu.Lock()
	m.views[v.From] = held
	m.mu.Unlock()
}

func (d *delegate) NotifyJoin(n *memberlist.Node) {
	mem, leaving := toMember(n)
	m := d.m
	m.mu.Lock()
	m.members[mem.Name] = mem
	if leaving {
		m.leavers[mem.Name] = true
	} else {
		delete(m.leavers, mem.Name)
	}
	m.mu.Unlock()
	m.notify(Event{Type: EventJoin, Member: mem, Time: time.Now()})
}

func (d *delegate) NotifyUpdate(n *memberlist.Node) {
	mem, leaving := toMember(n)
	m := d.m
	m.mu.Lock()
	old, known := m.members[mem.Name]
	m.members[mem.Name] = mem
	if leaving {
		m.leavers[mem.Name] = true
	}
	m.mu.Unlock()
	if known && old.Addr == mem.Addr && bytes.Equal(old.Meta, mem.Meta) {
		return // only the leaving mark changed; the leave itself follows
	}
	m.notify(Event{Type: EventUpdate, Member: mem, Time: time.Now()})
}

func (d *delegate) NotifyLeave(n *memberlist.Node) {
	mem, _ := toMember(n)
	m := d.m
	typ := EventDead
	m.mu.Lock()
	if m.leavers[mem.Name] {
		typ = EventLeave
	}
	delete(m.leavers, mem.Name)
	delete(m.members, mem.Name)
	delete(m.views, mem.Name)
	m.mu.Unlock()
	m.notify(Event{Type: typ, Member: mem, Time: time.Now()})
}

func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	m := d.m
	ce := &ConflictError{
		Name:  existing.Name,
		Known: addrPort(existing),
		Other: addrPort(other),
		Local: existing.Name == m.name,
	}
	key := ce.Name + " " + ce.Other.String()
	now := time.Now()
	m.mu.Lock()
	if ce.Local {
		m.conflicts++
		m.lastLocal, m.lastLocalAt = ce, now
	}
	last, seen := m.reported[key]
	if !seen || now.Sub(last) >= conflictReportInterval {
		m.reported[key] = now
	} else {
		ce = nil
	}
	m.mu.Unlock()
	if ce == nil {
		return
	}
	m.log.Error(ce.Error())
	if m.onClash != nil {
		m.dispatch.do(func() { m.onClash(ce) })
	}
}

func toMember(n *memberlist.Node) (Member, bool) {
	user, leaving := decodeMeta(n.Meta)
	return Member{Name: n.Name, Addr: addrPort(n), Meta: user}, leaving
}

// dispatcher runs callbacks one at a time, in order, on its own goroutine,
// so that they never run under memberlist's locks and a slow callback does
// not stall gossip. Its queue is unbounded: membership changes are few.
type dispatcher struct {
	mu      sync.Mutex
	queue   []func()
	stopped bool
	wake    chan struct{}
	done    chan struct{}
	exited  chan struct{}
}

func newDispatcher() *dispatcher {
	d := &dispatcher{
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	go d.run()
	return d
}

func (d *dispatcher) do(f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.queue = append(d.queue, f)
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) run() {
	defer close(d.exited)
	for {
		select {
		case <-d.done:
			return
		case <-d.wake:
		}
		for {
			d.mu.Lock()
			if d.stopped || len(d.queue) == 0 {
				d.mu.Unlock()
				break
			}
			f := d.queue[0]
			d.queue[0] = nil
			d.queue = d.queue[1:]
			d.mu.Unlock()
			f()
		}
	}
}

// stop drops queued callbacks and waits for a running one to return. It
// must not be called from a callback.
func (d *dispatcher) stop() {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.stopped = true
	d.queue = nil
	d.mu.Unlock()
	close(d.done)
	<-d.exited
}
