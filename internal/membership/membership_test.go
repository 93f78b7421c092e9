package membership

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests run real memberlist instances over UDP and TCP on 127.0.0.1,
// each on its own system-chosen port.

const converge = 10 * time.Second // generous wait for anything to happen

var testKey = []byte("0123456789abcdef0123456789abcdef")

// recorder collects events and conflicts delivered to callbacks.
type recorder struct {
	mu        sync.Mutex
	events    []Event
	conflicts []*ConflictError
}

func (r *recorder) onEvent(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) onConflict(ce *ConflictError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conflicts = append(r.conflicts, ce)
}

// find returns the first recorded event of type typ about name.
func (r *recorder) find(typ EventType, name string) (Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if ev.Type == typ && ev.Member.Name == name {
			return ev, true
		}
	}
	return Event{}, false
}

func (r *recorder) conflictList() []*ConflictError {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.conflicts)
}

// logSink is a slog.Handler keeping records, usable after a test ends
// (memberlist goroutines may log late), unlike t.Log.
type logSink struct {
	mu      sync.Mutex
	records []string
}

func (s *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *logSink) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s *logSink) WithGroup(string) slog.Handler            { return s }
func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, line)
	return nil
}

func (s *logSink) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.records)
}

func (s *logSink) contains(level slog.Level, substr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.records {
		if strings.HasPrefix(l, level.String()+" ") && strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

type node struct {
	*Membership
	rec *recorder
}

func start(t *testing.T, name string, key []byte, edit ...func(*Config)) *node {
	t.Helper()
	rec := &recorder{}
	cfg := Config{
		NodeName:      name,
		BindAddr:      "127.0.0.1",
		AdvertiseAddr: "127.0.0.1",
		Keys:          keyList(key),
		Logger:        slog.New(slog.DiscardHandler),
		OnEvent:       rec.onEvent,
		OnConflict:    rec.onConflict,
	}
	for _, e := range edit {
		e(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return &node{m, rec}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(converge)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still waiting for %s", converge, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sees(n *node, names ...string) func() bool {
	return func() bool { return slices.Equal(n.MemberNames(), names) }
}

func startCluster(t *testing.T, names ...string) []*node {
	t.Helper()
	var nodes []*node
	for i, name := range names {
		n := start(t, name, testKey)
		if i > 0 {
			if err := n.Join([]string{nodes[0].LocalAddr().String()}); err != nil {
				t.Fatal(err)
			}
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		waitFor(t, n.name+" to see "+strings.Join(names, ","), sees(n, names...))
	}
	return nodes
}

func TestJoinAndDeath(t *testing.T) {
	nodes := startCluster(t, "a", "b", "c")
	for _, n := range nodes {
		for _, mem := range n.Members() {
			if !mem.Addr.Addr().IsLoopback() || mem.Addr.Port() == 0 {
				t.Errorf("%s sees %s at %v", n.name, mem.Name, mem.Addr)
			}
		}
		for _, other := range []string{"a", "b", "c"} {
			waitFor(t, n.name+" to get the join event for "+other, func() bool {
				_, ok := n.rec.find(EventJoin, other)
				return ok
			})
		}
	}

	// c dies: it stops without leaving.
	a, b, c := nodes[0], nodes[1], nodes[2]
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	died := time.Now()
	waitFor(t, "a and b to drop c", func() bool { return sees(a, "a", "b")() && sees(b, "a", "b")() })
	for _, n := range []*node{a, b} {
		var ev Event
		waitFor(t, n.name+"'s dead event for c", func() (ok bool) { ev, ok = n.rec.find(EventDead, "c"); return ok })
		t.Logf("%s saw c dead after %v", n.name, ev.Time.Sub(died).Round(time.Millisecond))
		if _, left := n.rec.find(EventLeave, "c"); left {
			t.Errorf("%s reports a crash as a graceful leave", n.name)
		}
	}
	t.Logf("estimated bound with default timers, 3 members: %v", a.Timers().DetectionBound(3))
}

// TestDetectionTime kills a member five times, as a crash would (no leave),
// and checks what a failover relies on each time: both survivors declare
// it dead (not gone on purpose), drop it from their members, and report
// the death after the kill, never before. It logs how long they took to
// agree, but asserts nothing about time: the lab benchmarks
// (make bench-lab) print failover figures.
func TestDetectionTime(t *testing.T) {
	nodes := startCluster(t, "a", "b")
	var times []time.Duration
	for trial := range 5 {
		victim := start(t, fmt.Sprintf("victim-%d", trial), testKey)
		if err := victim.Join([]string{nodes[0].LocalAddr().String()}); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			waitFor(t, "victim to join", func() bool { return slices.Contains(n.MemberNames(), victim.name) })
		}
		// Let the victim settle into everyone's probe rotation.
		time.Sleep(300 * time.Millisecond)
		died := time.Now()
		if err := victim.Shutdown(); err != nil {
			t.Fatal(err)
		}
		var agreed time.Duration
		for _, n := range nodes {
			var ev Event
			waitFor(t, n.name+" to declare "+victim.name+" dead", func() (ok bool) { ev, ok = n.rec.find(EventDead, victim.name); return ok })
			if ev.Time.Before(died) {
				t.Errorf("%s declared %s dead %v before it was killed", n.name, victim.name, died.Sub(ev.Time))
			}
			if _, left := n.rec.find(EventLeave, victim.name); left {
				t.Errorf("%s reports the crash of %s as a graceful leave", n.name, victim.name)
			}
			waitFor(t, n.name+" to drop "+victim.name, func() bool { return !slices.Contains(n.MemberNames(), victim.name) })
			agreed = max(agreed, ev.Time.Sub(died))
		}
		for _, n := range nodes {
			if !sees(n, "a", "b")() {
				t.Errorf("after %s died, %s sees %v, want a and b", victim.name, n.name, n.MemberNames())
			}
		}
		times = append(times, agreed)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	t.Logf("death detected and agreed by both survivors, 5 trials: min %v, median %v, max %v (all: %v)",
		times[0].Round(time.Millisecond), times[len(times)/2].Round(time.Millisecond),
		times[len(times)-1].Round(time.Millisecond), times)
}

func TestGracefulLeave(t *testing.T) {
	nodes := startCluster(t, "a", "b", "c")
	c := nodes[2]
	if err := c.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[:2] {
		waitFor(t, n.name+"'s leave event for c", func() bool { _, ok := n.rec.find(EventLeave, "c"); return ok })
		if _, dead := n.rec.find(EventDead, "c"); dead {
			t.Errorf("%s reports a graceful leave as a death", n.name)
		}
		if !sees(n, "a", "b")() {
			t.Errorf("%s sees %v", n.name, n.MemberNames())
		}
	}
	if err := c.Leave(time.Second); err == nil {
		t.Error("Leave after Shutdown succeeded")
	}
}

func TestMeta(t *testing.T) {
	a := start(t, "a", testKey, func(c *Config) { c.Meta = []byte("v1") })
	b := start(t, "b", testKey)
	if err := b.Join([]string{a.LocalAddr().String()}); err != nil {
		t.Fatal(err)
	}
	metaOf := func(n *node, name string) string {
		for _, m := range n.Members() {
			if m.Name == name {
				return string(m.Meta)
			}
		}
		return "<absent>"
	}
	waitFor(t, "b to see a's meta", func() bool { return metaOf(b, "a") == "v1" })
	if err := a.SetMeta([]byte("eth1=up"), time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to see a's new meta", func() bool { return metaOf(b, "a") == "eth1=up" })
	waitFor(t, "b's update event", func() bool {
		ev, ok := b.rec.find(EventUpdate, "a")
		return ok && string(ev.Member.Meta) == "eth1=up"
	})
	if err := a.SetMeta(make([]byte, MaxMetaSize+1), time.Second); err == nil {
		t.Error("oversized meta accepted")
	}
	if _, err := New(Config{NodeName: "x", Keys: [][]byte{testKey}, Meta: make([]byte, MaxMetaSize+1)}); err == nil {
		t.Error("oversized initial meta accepted")
	}
}

func TestWrongKeyCannotJoin(t *testing.T) {
	a := start(t, "a", testKey)
	for _, c := range []struct {
		name string
		key  []byte
	}{
		{"wrong key", []byte("fedcba9876543210fedcba9876543210")},
		{"shorter key", testKey[:16]},
		{"no key", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := start(t, "intruder", c.key, func(cfg *Config) { cfg.AllowUnencrypted = true })
			err := x.Join([]string{a.LocalAddr().String()})
			t.Logf("join error: %v", err)
			if err == nil {
				t.Error("joined with a bad key")
			}
			if !sees(x, "intruder")() {
				t.Errorf("intruder sees %v", x.MemberNames())
			}
			_ = x.Shutdown()
		})
	}
	if !sees(a, "a")() {
		t.Errorf("a sees %v", a.MemberNames())
	}
	if _, ok := a.rec.find(EventJoin, "intruder"); ok {
		t.Error("a reported the intruder joining")
	}
}

func TestDuplicateNodeName(t *testing.T) {
	sink := &logSink{}
	nodes := startCluster(t, "n1", "n2")
	n1, n2 := nodes[0], nodes[1]
	dup := start(t, "n1", testKey, func(c *Config) { c.Logger = slog.New(sink) })

	err := dup.Join([]string{n2.LocalAddr().String()})
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Join of a duplicate name returned %v, want a *ConflictError", err)
	}
	t.Logf("duplicate's Join: %v", err)
	if ce.Name != "n1" || !ce.Local || ce.Known == ce.Other {
		t.Errorf("conflict %+v", ce)
	}
	for _, want := range []string{`"n1"`, "unique node name", ce.Known.String(), ce.Other.String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if !sink.contains(slog.LevelError, "Conflicting address for n1") {
		t.Error("memberlist's conflict log line did not reach the slog logger at error level")
	}

	// The member that already knew n1 reports the newcomer too, and keeps
	// the original.
	waitFor(t, "n2's conflict callback", func() bool { return len(n2.rec.conflictList()) > 0 })
	got := n2.rec.conflictList()[0]
	t.Logf("n2's conflict: %v", got)
	if got.Name != "n1" || got.Local || got.Known != n1.LocalAddr() || got.Other != dup.LocalAddr() {
		t.Errorf("n2's conflict %+v; n1 at %v, dup at %v", got, n1.LocalAddr(), dup.LocalAddr())
	}
	for _, m := range n2.Members() {
		if m.Name == "n1" && m.Addr != n1.LocalAddr() {
			t.Errorf("n2 now has n1 at %v, the duplicate's address", m.Addr)
		}
	}
	if len(n2.rec.conflictList()) > 1 {
		t.Errorf("conflict reported %d times; want rate limiting", len(n2.rec.conflictList()))
	}
}

func TestNewValidation(t *testing.T) {
	_, err := New(Config{NodeName: "a", BindAddr: "127.0.0.1"})
	if !errors.Is(err, ErrNoKey) {
		t.Errorf("no key: %v, want ErrNoKey", err)
	}
	if _, err := New(Config{NodeName: "a", Keys: [][]byte{[]byte("short")}}); err == nil ||
		!strings.Contains(err.Error(), "is 5 bytes; it must be 16, 24 or 32 bytes") {
		t.Errorf("short key: %v", err)
	}
	if _, err := New(Config{Keys: [][]byte{testKey}}); err == nil {
		t.Error("empty node name accepted")
	}
	bad := Config{NodeName: "a", Keys: [][]byte{testKey}, Timers: Timers{ProbeInterval: 50 * time.Millisecond, ProbeTimeout: 80 * time.Millisecond}}
	if _, err := New(bad); err == nil || !strings.Contains(err.Error(), "ProbeTimeout (80ms) must be shorter than ProbeInterval (50ms)") {
		t.Errorf("bad timers: %v", err)
	}
	a := start(t, "plain", nil, func(c *Config) { c.AllowUnencrypted = true })
	if err := a.Join(nil); err != nil {
		t.Errorf("Join(nil): %v", err)
	}
	// A port clash is reported with the address.
	_, err = New(Config{NodeName: "b", BindAddr: "127.0.0.1", BindPort: int(a.LocalAddr().Port()), Keys: [][]byte{testKey}})
	if err == nil || !strings.Contains(err.Error(), a.LocalAddr().String()) {
		t.Errorf("port clash: %v", err)
	}
}

func TestJoinUnreachable(t *testing.T) {
	a := start(t, "a", testKey, func(c *Config) { c.Timers.TCPTimeout = 300 * time.Millisecond })
	err := a.Join([]string{"127.0.0.1:1", "192.0.2.1"}) // nothing listens there
	if err == nil || !strings.Contains(err.Error(), "joined 0 of 2 members") ||
		!strings.Contains(err.Error(), fmt.Sprintf("192.0.2.1:%d", DefaultPort)) {
		t.Errorf("join: %v", err)
	}
}

func TestTimers(t *testing.T) {
	d := Timers{}.withDefaults()
	if d != DefaultTimers() {
		t.Errorf("zero timers do not default: %+v", d)
	}
	partial := Timers{ProbeInterval: time.Second}.withDefaults()
	if partial.ProbeInterval != time.Second || partial.ProbeTimeout != DefaultTimers().ProbeTimeout {
		t.Errorf("partial: %+v", partial)
	}
	if got := DefaultTimers().DetectionBound(3); got != 450*time.Millisecond {
		t.Errorf("bound for 3 = %v", got)
	}
	if got := DefaultTimers().DetectionBound(100); got != 650*time.Millisecond {
		t.Errorf("bound for 100 = %v", got)
	}
	// memberlist's own LAN defaults, for comparison: ~5-6 s.
	lan := Timers{ProbeInterval: time.Second, ProbeTimeout: 500 * time.Millisecond, SuspicionMult: 4,
		SuspicionMaxTimeoutMult: 6, GossipInterval: 200 * time.Millisecond}
	t.Logf("bound, 3 members: ours %v, memberlist LAN defaults %v",
		DefaultTimers().DetectionBound(3), lan.DetectionBound(3))
	if err := (Timers{SuspicionMult: -1}).Validate(); err == nil {
		t.Error("negative SuspicionMult accepted")
	}
}

func TestParseKey(t *testing.T) {
	ref := SecretRef{Namespace: "portico-system", Name: "memberlist", Key: "secretkey"}
	raw32 := bytes.Repeat([]byte{0xfe}, 32)
	for _, c := range []struct {
		name string
		in   string
		want []byte
		err  string
	}{
		{name: "raw 16", in: string(bytes.Repeat([]byte{1}, 16)), want: bytes.Repeat([]byte{1}, 16)},
		{name: "raw 24", in: string(bytes.Repeat([]byte{0x80}, 24)), want: bytes.Repeat([]byte{0x80}, 24)},
		{name: "raw 32", in: string(raw32), want: raw32},
		{name: "openssl rand -base64 32 with newline", in: "/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v4=\n", want: raw32},
		{name: "base64 url unpadded", in: "_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v4", want: raw32},
		{name: "ascii 16 chars not base64 of a key", in: "correct-horse-ba", want: []byte("correct-horse-ba")},
		{name: "7 bytes", in: "\x01\x02\x03\x04\x05\x06\x07",
			err: "secret portico-system/memberlist key \"secretkey\" is 7 bytes; it must be 16, 24 or 32 bytes (e.g. `openssl rand -base64 32`)"},
		{name: "base64 of 20 bytes", in: "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
			err: "secret portico-system/memberlist key \"secretkey\" is 28 bytes (20 once base64-decoded); it must be 16, 24 or 32 bytes (e.g. `openssl rand -base64 32`)"},
		{name: "empty", in: "", err: "secret portico-system/memberlist key \"secretkey\" is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseKey(ref, []byte(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v\nwant %s", err, c.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, c.want) {
				t.Fatalf("got %x, %v; want %x", got, err, c.want)
			}
		})
	}

	_, err := KeysFromSecret(ref, map[string][]byte{"key": nil, "other": nil})
	want := `secret portico-system/memberlist has no key "secretkey" (it has "key", "other"); create it with ` +
		"`kubectl -n portico-system create secret generic memberlist --from-literal=secretkey=\"$(openssl rand -base64 32)\"`"
	if err == nil || err.Error() != want {
		t.Errorf("missing key: %v\nwant %s", err, want)
	}
	keys, err := KeysFromSecret(ref, map[string][]byte{"secretkey": []byte(strings.Repeat("QUJD", 8))})
	if err != nil || len(keys) != 1 || string(keys[0]) != strings.Repeat("ABC", 8) {
		t.Errorf("got %q, %v", keys, err)
	}
}

func TestParseKeys(t *testing.T) {
	ref := SecretRef{Namespace: "portico-system", Name: "memberlist", Key: "secretkey"}
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 24)
	b1, b2 := base64.StdEncoding.EncodeToString(k1), base64.StdEncoding.EncodeToString(k2)
	for _, c := range []struct {
		name, in string
		want     [][]byte
		err      string
	}{
		{name: "one key", in: b1 + "\n", want: [][]byte{k1}},
		{name: "two keys, one a line", in: b2 + "\n" + b1 + "\n", want: [][]byte{k2, k1}},
		{name: "commas and spaces", in: b1 + ", " + b2, want: [][]byte{k1, k2}},
		{name: "a bad second key", in: b1 + "\nnot-a-key\n", err: `holds 2 keys; key 2 (counting from 1) is not base64 of 16, 24 or 32 bytes`},
		{name: "a key twice", in: b1 + "\n" + b1, err: "holds key 2 (counting from 1) twice"},
		{name: "blank", in: " \n", err: "is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseKeys(ref, []byte(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v\nwant %s", err, c.err)
				}
				return
			}
			if err != nil || !slices.EqualFunc(got, c.want, bytes.Equal) {
				t.Fatalf("got %x, %v; want %x", got, err, c.want)
			}
		})
	}
}

func keyList(key []byte) [][]byte {
	if key == nil {
		return nil
	}
	return [][]byte{key}
}

// TestKeyRotation rotates the key of three running members in the
// documented steps (add the new key second, make it first, remove the old
// one), one member at a time. No member ever fails to decrypt another's
// packet (memberlist logs each such packet: that is the split the steps
// avoid), all three stay members, a member started with only the new key
// joins afterwards and one with only the old key cannot; and skipping the
// first step (a member encrypting with a key the others lack) does split the
// cluster, so the check would see it.
func TestKeyRotation(t *testing.T) {
	names := []string{"a", "b", "c"}
	var nodes []*node
	sinks := map[string]*logSink{}
	for i, name := range names {
		sinks[name] = &logSink{}
		n := start(t, name, testKey, func(c *Config) { c.Logger = slog.New(sinks[name]) })
		if i > 0 {
			if err := n.Join([]string{nodes[0].LocalAddr().String()}); err != nil {
				t.Fatal(err)
			}
		}
		nodes = append(nodes, n)
	}
	together := func(step string) {
		t.Helper()
		for _, n := range nodes {
			waitFor(t, step+": "+n.name+" to see a, b and c", sees(n, names...))
		}
		for name, sink := range sinks {
			if sink.contains(slog.LevelError, "ecrypt") {
				t.Fatalf("%s: %s could not decrypt a packet: %v", step, name, sink.all())
			}
		}
	}
	together("start")
	oldKey, newKey := testKey, bytes.Repeat([]byte{7}, 32)
	for i, keys := range [][][]byte{{oldKey, newKey}, {newKey, oldKey}, {newKey}} {
		for _, n := range nodes {
			if err := n.SetKeys(keys); err != nil {
				t.Fatalf("step %d on %s: %v", i+1, n.name, err)
			}
			if got := n.Keys(); !slices.EqualFunc(got, keys, bytes.Equal) {
				t.Fatalf("step %d on %s: keys %x, want %x", i+1, n.name, got, keys)
			}
			// A few probe rounds with the new keys before the next member.
			time.Sleep(3 * n.Timers().ProbeInterval * time.Duration(len(nodes)))
			together(fmt.Sprintf("step %d, after %s", i+1, n.name))
		}
	}
	late := start(t, "late", newKey)
	if err := late.Join([]string{nodes[1].LocalAddr().String()}); err != nil {
		t.Fatalf("a member with only the new key cannot join: %v", err)
	}
	stale := start(t, "stale", oldKey)
	if err := stale.Join([]string{nodes[1].LocalAddr().String()}); err == nil {
		t.Error("a member with only the old key joined after the old key was removed")
	}

	// Without the first step the cluster splits: c encrypts with a key a
	// and b no longer have.
	if err := nodes[2].SetKeys([][]byte{oldKey, newKey}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to fail to decrypt c's packets", func() bool { return sinks["a"].contains(slog.LevelError, "ecrypt") })
	waitFor(t, "a and b to lose c", func() bool { return !slices.Contains(nodes[0].MemberNames(), "c") })
	if err := start(t, "plain", nil, func(c *Config) { c.AllowUnencrypted = true }).SetKeys([][]byte{newKey}); err == nil ||
		!strings.Contains(err.Error(), "restart it") {
		t.Errorf("SetKeys on an unencrypted member: %v", err)
	}
}

// TestConflictAttribution: when a second speaker claims a live member's name,
// only the newcomer (the one the other members refuse) is told it lost the
// name. The original keeps it whether it joins the newcomer's address (as a
// speaker does when the shared SpeakerStatus names it) or is in the middle of
// a Join of its own while the newcomer contacts it.
func TestConflictAttribution(t *testing.T) {
	nodes := startCluster(t, "n1", "n2")
	n1, n2 := nodes[0], nodes[1]

	// n1 is inside a Join that waits on a member which accepts the
	// connection and never answers, while a newcomer named n1 contacts it
	// directly: the conflict n1 sees then is the newcomer's.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := silent.Accept(); err == nil {
			accepted <- c
		}
	}()
	joined := make(chan error, 1)
	go func() { joined <- n1.Join([]string{silent.Addr().String(), n2.LocalAddr().String()}) }()
	held := <-accepted

	dup := start(t, "n1", testKey)
	err = dup.Join([]string{n1.LocalAddr().String()})
	var ce *ConflictError
	if !errors.As(err, &ce) || !ce.Refused {
		t.Fatalf("the newcomer's Join of the original returned %v, want a *ConflictError saying it is refused", err)
	}
	t.Logf("newcomer: %v", err)
	if ce.Known != dup.LocalAddr() || ce.Other != n1.LocalAddr() {
		t.Errorf("newcomer's conflict %+v; it is at %v, the original at %v", ce, dup.LocalAddr(), n1.LocalAddr())
	}
	_ = held.Close()
	if err := <-joined; err != nil {
		t.Errorf("the original's Join, while the newcomer contacted it: %v, want nil (the conflict is the newcomer's)", err)
	}

	// The original joins the newcomer's address itself.
	if err := n1.Join([]string{dup.LocalAddr().String()}); err != nil {
		t.Errorf("the original's Join of the newcomer: %v, want nil", err)
	}
	if c := n1.NameConflict(); c != nil {
		t.Errorf("the original is told it lost its name: %v", c)
	}
	if c := dup.NameConflict(); c == nil || !c.Refused {
		t.Errorf("the newcomer's standing: %v, want refused", c)
	}
	// The original still learns of the conflict, to report it.
	waitFor(t, "the original's conflict report", func() bool { return len(n1.rec.conflictList()) > 0 })
	if got := n1.rec.conflictList()[0]; !got.Local || got.Refused {
		t.Errorf("the original's report %+v, want Local and not Refused", got)
	}
	if !strings.Contains(n1.rec.conflictList()[0].Error(), dup.LocalAddr().String()) {
		t.Errorf("the original's report %q does not name the newcomer's address", n1.rec.conflictList()[0])
	}
}

// TestConflictWithoutWitness: two speakers alone with one name have no third
// member to say which came first; exactly one of them (the one at the lower
// address) keeps the name, and both agree which.
func TestConflictWithoutWitness(t *testing.T) {
	a := start(t, "solo", testKey)
	b := start(t, "solo", testKey)
	err := b.Join([]string{a.LocalAddr().String()})
	t.Logf("b's Join: %v", err)
	waitFor(t, "a to see the conflict", func() bool { return len(a.rec.conflictList()) > 0 })
	keeper, loser := a, b
	if b.LocalAddr().Compare(a.LocalAddr()) < 0 {
		keeper, loser = b, a
	}
	if c := keeper.NameConflict(); c != nil {
		t.Errorf("the speaker at the lower address %v lost the name: %v", keeper.LocalAddr(), c)
	}
	if c := loser.NameConflict(); c == nil || !c.Refused {
		t.Errorf("the speaker at the higher address %v keeps the name too (%v)", loser.LocalAddr(), c)
	}
}
