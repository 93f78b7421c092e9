package speaker_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/membership"
	"github.com/portico-lb/portico/internal/netnstest"
	"github.com/portico-lb/portico/internal/testcluster"
	"github.com/portico-lb/portico/speaker"
)

var cluster *testcluster.Cluster

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(testcluster.Main(m, &cluster))
}

const (
	testNamespace = "portico-system"
	svcIP         = "192.0.2.100"
)

// segment is a shared L2 segment: a bridge in its own namespace, node
// namespaces (eth1, 192.0.2.1N/24) and a client namespace (eth0, 192.0.2.2).
type segment struct {
	bridge, client *netnstest.NS
	nodes          map[string]*netnstest.NS
	macs           map[string]string // node -> eth1 MAC
	ports          map[string]string // node -> bridge port name
}

func newSegment(t *testing.T, nodes ...string) *segment {
	t.Helper()
	seg := &segment{
		bridge: netnstest.New(t, "spkbr"), client: netnstest.New(t, "spkcl"),
		nodes: map[string]*netnstest.NS{}, macs: map[string]string{}, ports: map[string]string{},
	}
	seg.bridge.Run(t, "ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
	seg.bridge.Run(t, "ip", "link", "set", "br0", "up")
	seg.attach(t, seg.client, "eth0", "pcl", "192.0.2.2/24", "")
	for i, name := range nodes {
		seg.addNode(t, name, fmt.Sprintf("02:00:5e:00:53:%02x", 0x11+i), fmt.Sprintf("192.0.2.%d/24", 11+i))
	}
	return seg
}

// attach connects ns to the bridge with a veth pair (ifname in ns, port on
// the bridge) and brings it up with addr (and mac, when set).
func (seg *segment) attach(t *testing.T, ns *netnstest.NS, ifname, port, addr, mac string) {
	t.Helper()
	netnstest.Veth(t, ns, ifname, seg.bridge, port)
	if mac != "" {
		ns.Run(t, "ip", "link", "set", ifname, "address", mac)
	}
	seg.bridge.Run(t, "ip", "link", "set", port, "master", "br0")
	seg.bridge.Run(t, "ip", "link", "set", port, "up")
	ns.Run(t, "ip", "addr", "add", addr, "dev", ifname)
	ns.Run(t, "ip", "link", "set", ifname, "up")
}

// addNode adds a node namespace with eth1 on the segment.
func (seg *segment) addNode(t *testing.T, name, mac, addr string) {
	t.Helper()
	ns := netnstest.New(t, "spknode")
	port := fmt.Sprintf("p%d", len(seg.ports))
	seg.attach(t, ns, "eth1", port, addr, mac)
	seg.nodes[name], seg.macs[name], seg.ports[name] = ns, mac, port
}

var arpingReply = regexp.MustCompile(`reply from \S+ \[([0-9A-Fa-f:]{17})\]`)

// arping returns the distinct MACs that answered ARP for ip from the client.
func (seg *segment) arping(ip string) []string {
	out, _ := seg.client.Exec("arping", "-c", "2", "-w", "2", "-I", "eth0", ip)
	var macs []string
	for _, m := range arpingReply.FindAllStringSubmatch(out, -1) {
		macs = append(macs, strings.ToLower(m[1]))
	}
	slices.Sort(macs)
	return slices.Compact(macs)
}

func (seg *segment) nodeOf(mac string) string {
	for n, m := range seg.macs {
		if m == mac {
			return n
		}
	}
	return "unknown MAC " + mac
}

// waitAnswer waits until exactly one node, other than not, answers ARP for
// ip in two arping rounds in a row, and returns it. Two nodes may answer for
// an instant during a handover; they must not keep doing so.
func (seg *segment) waitAnswer(t *testing.T, ip, not string) string {
	t.Helper()
	var last []string
	prev := ""
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		last = seg.arping(ip)
		cur := ""
		if len(last) == 1 && seg.nodeOf(last[0]) != not {
			cur = seg.nodeOf(last[0])
		}
		if len(last) > 1 {
			t.Logf("%s answered by %d nodes during a handover: %v", ip, len(last), last)
		}
		if cur != "" && cur == prev {
			return cur
		}
		prev = cur
	}
	t.Fatalf("no single node (other than %q) answers ARP for %s; last answers: %v", not, ip, last)
	return ""
}

// running is one in-process speaker.
type running struct {
	sp     *speaker.Speaker
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// stop stops the speaker as SIGTERM does and waits for it; it is safe to
// call more than once.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		r.err = <-r.done
	})
	if r.err != nil {
		t.Errorf("speaker returned %v", r.err)
	}
}

func startSpeaker(t testing.TB, node string, ns *netnstest.NS, edits ...func(*speaker.Config)) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := speaker.Config{
		NodeName:   node,
		RestConfig: cluster.Config,
		BindAddr:   "127.0.0.1",
		Announce:   []time.Duration{0, 100 * time.Millisecond},
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: testLogLevel()})).With("test", t.Name()),
		NetNS:      ns.Do,
	}
	for _, edit := range edits {
		edit(&cfg)
	}
	sp, err := speaker.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("starting speaker %s: %v", node, err)
	}
	r := &running{sp: sp, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- sp.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func mustCreate(t testing.TB, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := cluster.Client.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

// poolAndAd creates pool NAME-pool with addrs and L2Advertisement NAME for
// it, announcing on ifaces.
func poolAndAd(t testing.TB, name, addrs string, ifaces ...string) {
	t.Helper()
	mustCreate(t,
		&porticov1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name + "-pool"},
			Spec: porticov1.IPAddressPoolSpec{Addresses: []porticov1.AddressEntry{porticov1.AddressEntry(addrs)}}},
		&porticov1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: porticov1.L2AdvertisementSpec{
				PoolAndNodeSelection: porticov1.PoolAndNodeSelection{IPAddressPools: []string{name + "-pool"}},
				Interfaces:           ifaces,
			}},
	)
}

func ensureSecret(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	_ = cluster.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}})
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	_ = cluster.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "portico-memberlist"},
		Data:       map[string][]byte{"secretkey": []byte(key)},
	})
}

func node(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
}

// lbService creates a LoadBalancer Service and gives it ip as the
// controller would.
func lbService(t *testing.T, ns, name, ip string) *corev1.Service {
	t.Helper()
	ctx := context.Background()
	_ = cluster.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			AllocateLoadBalancerNodePorts: new(false),
			Ports:                         []corev1.ServicePort{{Port: 80}},
		},
	}
	mustCreate(t, svc)
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
	if err := cluster.Client.Status().Update(ctx, svc); err != nil {
		t.Fatalf("setting the Service IP: %v", err)
	}
	return svc
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
	}
	t.Fatalf("timed out waiting for %s; last: %s", what, last)
}

func announcement(t *testing.T, ns, name string) porticov1.ServiceAnnouncementStatus {
	t.Helper()
	var sa porticov1.ServiceAnnouncement
	_ = cluster.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &sa)
	return sa.Status
}

func speakerStatus(name string) porticov1.SpeakerStatusStatus {
	var st porticov1.SpeakerStatus
	_ = cluster.Client.Get(context.Background(), types.NamespacedName{Name: name}, &st)
	return st.Status
}

// TestL2FailoverInNamespaces runs three speakers against the real API server,
// each announcing from its own network namespace on a shared bridge, and checks
// with arping from a client namespace that exactly one node answers, that
// another takes over when it stops or loses carrier, and the status objects.
func TestL2FailoverInNamespaces(t *testing.T) {
	netnstest.Require(t, "arping")
	ensureSecret(t)
	nodes := []string{"l2-a", "l2-b", "l2-c"}
	seg := newSegment(t, nodes...)
	for _, n := range nodes {
		mustCreate(t, node(n))
	}
	poolAndAd(t, "l2", "192.0.2.100-192.0.2.120", "eth1")
	speakers := map[string]*running{}
	for _, n := range nodes {
		speakers[n] = startSpeaker(t, n, seg.nodes[n])
	}
	lbService(t, "l2", "web", svcIP)

	first := seg.waitAnswer(t, svcIP, "")
	t.Logf("%s answers for %s", first, svcIP)
	waitFor(t, "the ServiceAnnouncement", func() (bool, string) {
		st := announcement(t, "l2", "web")
		return len(st.L2) == 1 && st.L2[0].Node == first && slices.Equal(st.L2[0].Interfaces, []string{"eth1"}), fmt.Sprint(st)
	})
	waitFor(t, "SpeakerStatus of the winner", func() (bool, string) {
		st := speakerStatus(first)
		ok := slices.Equal(st.Members, nodes) && st.L2IPs == 1 && len(st.Interfaces) == 1 &&
			st.Interfaces[0].Name == "eth1" && st.Interfaces[0].Carrier && st.Interfaces[0].L2IPs == 1 &&
			st.Interfaces[0].MAC == seg.macs[first] && st.MemberlistAddress != "" && st.LastError == ""
		return ok, fmt.Sprintf("%+v", st)
	})
	waitFor(t, "an Announcing event on the Service", func() (bool, string) {
		return hasEvent(t, "l2", "web", fmt.Sprintf("announcing %s from %s on eth1", svcIP, first))
	})

	// The winner stops: another node takes over.
	speakers[first].stop(t)
	second := seg.waitAnswer(t, svcIP, first)
	t.Logf("after %s stopped, %s answers", first, second)
	waitFor(t, "the ServiceAnnouncement to follow", func() (bool, string) {
		st := announcement(t, "l2", "web")
		return len(st.L2) == 1 && st.L2[0].Node == second, fmt.Sprint(st)
	})

	// The new winner loses carrier on eth1 (its bridge port goes down): the
	// last node takes over, learning of it through memberlist metadata.
	seg.bridge.Run(t, "ip", "link", "set", seg.ports[second], "down")
	third := seg.waitAnswer(t, svcIP, second)
	if third == first {
		t.Fatalf("stopped speaker %s answers", first)
	}
	t.Logf("after %s lost carrier, %s answers", second, third)
	waitFor(t, "carrier loss in the SpeakerStatus", func() (bool, string) {
		st := speakerStatus(second)
		return len(st.Interfaces) == 1 && !st.Interfaces[0].Carrier && st.L2IPs == 0, fmt.Sprintf("%+v", st)
	})

	// Carrier returns: ownership goes back to the hash winner among the two
	// live nodes, still exactly one answer.
	seg.bridge.Run(t, "ip", "link", "set", seg.ports[second], "up")
	back := seg.waitAnswer(t, svcIP, "")
	t.Logf("carrier back on %s: %s answers", second, back)

	// An L2Advertisement naming a missing interface: reported in every
	// SpeakerStatus and as an event, and nothing else moves.
	poolAndAd(t, "typo", "198.51.100.0/28", "eth9")
	waitFor(t, "the missing interface in the SpeakerStatus", func() (bool, string) {
		st := speakerStatus(back)
		return strings.Contains(st.LastError, `L2Advertisement "typo": spec.interfaces: interface "eth9" does not exist on node `+back), st.LastError
	})
	waitFor(t, "an event on the L2Advertisement", func() (bool, string) {
		return hasEvent(t, "default", "typo", `interface "eth9" does not exist`)
	})
	if got := seg.waitAnswer(t, svcIP, ""); got != back {
		t.Errorf("a bad advertisement moved %s from %s to %s", svcIP, back, got)
	}
	if err := cluster.Client.Delete(context.Background(), &porticov1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "typo"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "lastError to clear", func() (bool, string) {
		st := speakerStatus(back)
		return st.LastError == "", st.LastError
	})

	// A second speaker claiming a live node's name: the conflict is reported,
	// the newcomer does not announce, and the original keeps its name (and
	// its IPs) even as it joins the newcomer's address, which the shared
	// SpeakerStatus names.
	seg.addNode(t, "dup", "02:00:5e:00:53:99", "192.0.2.99/24")
	dup := startSpeaker(t, third, seg.nodes["dup"])
	waitFor(t, "the duplicate speaker to be ready", func() (bool, string) { return dup.sp.Ready(), "" })
	waitFor(t, "the node-name conflict in the SpeakerStatus", func() (bool, string) {
		st := speakerStatus(third)
		return strings.Contains(st.LastError, "node name"), st.LastError
	})
	if c := dup.sp.Membership().NameConflict(); c == nil {
		t.Error("the duplicate speaker is not told the others know another speaker by its name")
	}
	original := speakers[third]
	for range 4 { // a few of the original's join rounds (every 2 s)
		if c := original.sp.Membership().NameConflict(); c != nil {
			t.Fatalf("the original speaker %s is told it lost its name: %v", third, c)
		}
		if owned := dup.sp.Owned(); len(owned) != 0 {
			t.Fatalf("the duplicate speaker announces %v", owned)
		}
		if got := seg.waitAnswer(t, svcIP, ""); got != back {
			t.Fatalf("the duplicate speaker moved %s from %s to %s", svcIP, back, got)
		}
		time.Sleep(time.Second)
	}
	dup.stop(t)

	// Deleting the Service: nobody answers any more.
	if err := cluster.Client.Delete(context.Background(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "l2", Name: "web"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "silence after the Service is deleted", func() (bool, string) {
		macs := seg.arping(svcIP)
		return len(macs) == 0, fmt.Sprint(macs)
	})
}

// hasEvent looks for an event on a Service whose note contains want.
func hasEvent(t *testing.T, ns, name, want string) (bool, string) {
	t.Helper()
	var list corev1.EventList
	if err := cluster.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return false, err.Error()
	}
	var seen []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name {
			seen = append(seen, e.Message)
			if strings.Contains(e.Message, want) {
				return true, ""
			}
		}
	}
	return false, fmt.Sprint(seen)
}

// testLogLevel is Warn, or what PORTICO_TEST_LOG says (debug, info, ...).
func testLogLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("PORTICO_TEST_LOG"))); err != nil {
		return slog.LevelWarn
	}
	return l
}

// TestMemberlistSecretErrors: a missing or malformed Secret stops the speaker
// at start with an error naming the Secret and key and saying what to do;
// --allow-unencrypted-memberlist lets it run without the Secret.
func TestMemberlistSecretErrors(t *testing.T) {
	ensureSecret(t)
	ctx := context.Background()
	mustCreate(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "short-key"},
		Data:       map[string][]byte{"secretkey": []byte("c2hvcnQ=")},
	})
	for _, c := range []struct {
		secret string
		want   []string
	}{
		{"missing", []string{"portico-system/missing not found", "kubectl -n portico-system create secret generic missing", "--allow-unencrypted-memberlist"}},
		{"short-key", []string{`portico-system/short-key key "secretkey"`, "16, 24 or 32 bytes"}},
	} {
		_, err := speaker.New(ctx, speaker.Config{NodeName: "secret-test", RestConfig: cluster.Config, SecretName: c.secret, BindAddr: "127.0.0.1"})
		if err == nil {
			t.Fatalf("secret %s: no error", c.secret)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("secret %s: error %q lacks %q", c.secret, err, w)
			}
		}
	}
	sp, err := speaker.New(ctx, speaker.Config{NodeName: "secret-test", RestConfig: cluster.Config, SecretName: "missing", BindAddr: "127.0.0.1", AllowUnencrypted: true})
	if err != nil {
		t.Fatalf("unencrypted explicitly allowed: %v", err)
	}
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	_ = sp.Run(stopped) // releases the memberlist port
}

// TestMemberlistKeysFollowTheSecret: a running speaker picks up a changed
// memberlist Secret (several keys, then another first key) without a
// restart; a malformed or deleted Secret keeps the keys in use and says so
// in the SpeakerStatus until it is fixed.
func TestMemberlistKeysFollowTheSecret(t *testing.T) {
	ensureSecret(t)
	ctx := context.Background()
	const name, nodeName = "rotating-keys", "keys-test"
	keyA, keyB := strings.Repeat("A", 43)+"=", strings.Repeat("B", 43)+"="
	rawA, _ := base64.StdEncoding.DecodeString(keyA)
	rawB, _ := base64.StdEncoding.DecodeString(keyB)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name},
		Data: map[string][]byte{"secretkey": []byte(keyA)}}
	mustCreate(t, sec, node(nodeName))
	t.Cleanup(func() {
		_ = cluster.Client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name}})
		_ = cluster.Client.Delete(ctx, node(nodeName))
	})
	setKeys := func(v string) {
		t.Helper()
		var s corev1.Secret
		if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(sec), &s); err != nil {
			t.Fatal(err)
		}
		s.Data["secretkey"] = []byte(v)
		if err := cluster.Client.Update(ctx, &s); err != nil {
			t.Fatal(err)
		}
	}
	// A namespace of its own: other tests' L2Advertisements must find no
	// interface of the host's to announce on.
	ns := netnstest.New(t, "spkkeys")
	runCtx, cancel := context.WithCancel(ctx)
	sp, err := speaker.New(runCtx, speaker.Config{NodeName: nodeName, RestConfig: cluster.Config, SecretName: name,
		BindAddr: "127.0.0.1", KeyRefresh: 100 * time.Millisecond, NetNS: ns.Do,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: testLogLevel()}))})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sp.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the speaker to be ready", func() (bool, string) { return sp.Ready(), "" })
	keysAre := func(want ...[]byte) func() (bool, string) {
		return func() (bool, string) {
			got := sp.Membership().Keys()
			return slices.EqualFunc(got, want, func(a, b []byte) bool { return string(a) == string(b) }), fmt.Sprintf("%x", got)
		}
	}
	waitFor(t, "key A", keysAre(rawA))

	setKeys(keyA + "\n" + keyB + "\n")
	waitFor(t, "keys A and B, A encrypting", keysAre(rawA, rawB))
	setKeys(keyB + "\n" + keyA)
	waitFor(t, "keys B and A, B encrypting", keysAre(rawB, rawA))
	waitFor(t, "the keys in the SpeakerStatus", func() (bool, string) {
		st := speakerStatus(nodeName)
		return st.MemberlistKeys == "2 keys, encrypting with "+membership.Fingerprint(rawB), st.MemberlistKeys
	})

	setKeys(keyB + "\nnot-a-key")
	waitFor(t, "the malformed Secret in the SpeakerStatus", func() (bool, string) {
		st := speakerStatus(nodeName)
		return strings.Contains(st.LastError, `secret portico-system/rotating-keys key "secretkey" holds 2 keys; key 2`) &&
			strings.Contains(st.LastError, "keeping the keys in use"), st.LastError
	})
	if ok, got := keysAre(rawB, rawA)(); !ok {
		t.Errorf("a malformed Secret changed the keys to %s", got)
	}
	if err := cluster.Client.Delete(ctx, sec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted Secret in the SpeakerStatus", func() (bool, string) {
		st := speakerStatus(nodeName)
		return strings.Contains(st.LastError, "memberlist secret portico-system/rotating-keys is gone"), st.LastError
	})
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name},
		Data: map[string][]byte{"secretkey": []byte(keyB)}})
	waitFor(t, "key B alone", keysAre(rawB))
	// (Other tests' L2Advertisements may name interfaces this node lacks.)
	waitFor(t, "the Secret's problems to leave lastError", func() (bool, string) {
		st := speakerStatus(nodeName)
		return !strings.Contains(st.LastError, "memberlist"), st.LastError
	})
}
