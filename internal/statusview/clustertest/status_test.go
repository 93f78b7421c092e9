package clustertest

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/cli"
	"github.com/portico-lb/portico/internal/statusview"
	"github.com/portico-lb/portico/internal/testcluster"
)

var cluster *testcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(testcluster.Main(m, &cluster))
}

// create makes obj, then writes its status as the controller or a speaker
// would (through the status subresource), when status is not nil.
func create(t *testing.T, obj client.Object, status func()) {
	t.Helper()
	ctx := context.Background()
	if err := cluster.Client.Create(ctx, obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
	if status != nil {
		status()
		if err := cluster.Client.Status().Update(ctx, obj); err != nil {
			t.Fatalf("writing the status of %T %s: %v", obj, obj.GetName(), err)
		}
	}
}

func cond(status metav1.ConditionStatus, reason, msg string) []metav1.Condition {
	return []metav1.Condition{{Type: "Ready", Status: status, Reason: reason, Message: msg, ObservedGeneration: 1, LastTransitionTime: metav1.Now()}}
}

func lbService(ns, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
}

// populate creates the objects of a small cluster: a healthy pool, an
// overlapping one, an advertisement naming a missing pool, a BGP peer, an
// announced Service, a waiting one, and two speakers.
func populate(t *testing.T) {
	now := metav1.NewTime(time.Now().Add(-5 * time.Minute).Truncate(time.Second))
	for _, ns := range []string{"shop", "infra"} {
		create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, nil)
	}
	pool := &v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1.IPAddressPoolSpec{Addresses: []v1.AddressEntry{"192.0.2.0/25", "2001:db8:1::/64"}}}
	create(t, pool, func() {
		pool.Status = v1.IPAddressPoolStatus{AssignedIPv4: 1, AvailableIPv4: 127, AssignedIPv6: 1, AvailableIPv6: 9223372036854775807,
			Conditions: cond("True", "Ready", "the pool hands out addresses")}
	})
	extra := &v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "extra"}, Spec: v1.IPAddressPoolSpec{Addresses: []v1.AddressEntry{"192.0.2.64/26"}}}
	create(t, extra, func() {
		extra.Status.Conditions = cond("False", "Overlap", `spec.addresses: overlaps pool "default" on 192.0.2.64/26; "default" is older and keeps those addresses, so this pool does not allocate them`)
	})
	l2 := &v1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "office"}, Spec: v1.L2AdvertisementSpec{PoolAndNodeSelection: v1.PoolAndNodeSelection{IPAddressPools: []string{"default", "warehouse"}}}}
	create(t, l2, func() {
		l2.Status.Conditions = cond("False", "MissingReference", `spec.ipAddressPools[1]: IPAddressPool "warehouse" does not exist; create it or remove it from the list (the other pools are still advertised)`)
	})
	peer := &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: v1.BGPPeerSpec{MyASN: 64501, PeerASN: 64500, PeerAddress: "198.51.100.1"}}
	create(t, peer, func() { peer.Status.Conditions = cond("True", "Ready", "all references resolve") })

	web := lbService("shop", "web")
	web.Annotations = map[string]string{statusview.AnnAllocatedFromPool: "default"}
	web.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicyPreferDualStack)
	create(t, web, func() {
		web.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.10"}, {IP: "2001:db8:1::10"}}
	})
	create(t, lbService("infra", "dns"), nil)
	create(t, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: "infra", Name: "dns.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Service", Namespace: "infra", Name: "dns", APIVersion: "v1"},
		Reason:         "AllocationFailed", Type: corev1.EventTypeWarning, LastTimestamp: now, FirstTimestamp: now,
		Message: `no pool has a free IPv4 address for infra/dns: pool "default" has no free IPv4 address`,
	}, nil)
	ann := &v1.ServiceAnnouncement{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	create(t, ann, func() {
		ann.Status = v1.ServiceAnnouncementStatus{
			L2:  []v1.L2Announcement{{IP: "192.0.2.10", Node: "node-a", Interfaces: []string{"eth0"}}},
			BGP: []v1.BGPAnnouncement{{IP: "2001:db8:1::10", Node: "node-a", Peers: []string{"tor"}}, {IP: "2001:db8:1::10", Node: "node-b", Peers: []string{"tor"}}},
		}
	})
	for _, node := range []string{"node-a", "node-b"} {
		sp := &v1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: node}}
		create(t, sp, func() {
			sp.Status = v1.SpeakerStatusStatus{MemberlistAddress: "198.51.100.11:7946", Members: []string{"node-a", "node-b"}, UpdatedAt: &now,
				BGPSessions: []v1.BGPSessionStatus{{Peer: "tor", Address: "198.51.100.1", State: "Established", Since: &now, PrefixesAdvertised: 1, BFDState: "Up"}}}
			if node == "node-a" {
				sp.Status.L2IPs = 1
			} else {
				sp.Status.BGPSessions[0] = v1.BGPSessionStatus{Peer: "tor", Address: "198.51.100.1", State: "Active", LastError: "no answer to OPEN: check the password"}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// run runs the CLI and returns its exit code, standard output and error.
func run(args ...string) (int, string, string) {
	var out, errOut strings.Builder
	code := cli.Main(append([]string{"portico"}, args...), cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errOut})
	return code, out.String(), errOut.String()
}

func TestStatus(t *testing.T) {
	populate(t)
	kc := cluster.KubeconfigPath

	t.Run("text", func(t *testing.T) {
		code, out, errOut := run("status", "--kubeconfig", kc)
		if code != 0 || errOut != "" {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
		t.Logf("\n%s", out)
		for _, want := range []string{
			"Portico status from https://127.0.0.1:",
			"default  192.0.2.0/25, 2001:db8:1::/64  1/127           1/9.2e18        true  True",
			"extra    192.0.2.64/26                  0/0             0/0             true  False",
			"infra/dns  <pending>                no pool has a free IPv4 address for infra/dns",
			"shop/web   192.0.2.10      default  L2 node-a (eth0)",
			"           2001:db8:1::10  default  BGP node-a -> tor; node-b -> tor",
			"node-a  2 (node-a, node-b)  1       tor 198.51.100.1 Established 5m (BFD Up), 1 prefix",
			"node-b  2 (node-a, node-b)  0       tor 198.51.100.1 Active: no answer to OPEN: check the password",
			"PROBLEMS (4)",
			`IPAddressPool/extra: Overlap: spec.addresses: overlaps pool "default" on 192.0.2.64/26`,
			`L2Advertisement/office: MissingReference: spec.ipAddressPools[1]: IPAddressPool "warehouse" does not exist`,
			"Service infra/dns: NoAddress: no pool has a free IPv4 address",
			"SpeakerStatus/node-b: SessionDown: BGP session to tor (198.51.100.1) is Active: no answer to OPEN: check the password",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("no line with %q", want)
			}
		}
		if strings.Contains(out, "\x1b[") {
			t.Error("colour codes in output that is not a terminal")
		}
	})

	t.Run("json", func(t *testing.T) {
		code, out, errOut := run("status", "--kubeconfig", kc, "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
		var r statusview.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if len(r.Pools) != 2 || r.Pools[0].Name != "default" || r.Pools[0].IPv6.Available != 9223372036854775807 || r.Pools[1].Ready != "False" {
			t.Errorf("pools %+v", r.Pools)
		}
		if len(r.Services) != 2 || r.Services[1].Name != "web" || len(r.Services[1].IPs) != 2 ||
			r.Services[1].IPs[0].L2 == nil || r.Services[1].IPs[0].L2.Node != "node-a" || len(r.Services[1].IPs[1].BGP) != 2 {
			t.Errorf("services %+v", r.Services)
		}
		if r.Services[0].Pending == "" || len(r.Services[0].IPs) != 0 {
			t.Errorf("waiting Service %+v", r.Services[0])
		}
		if len(r.Speakers) != 2 || r.Speakers[1].Sessions[0].State != "Active" || r.Speakers[0].Sessions[0].BFDState != "Up" {
			t.Errorf("speakers %+v", r.Speakers)
		}
		if len(r.Problems) != 4 {
			t.Errorf("problems %+v", r.Problems)
		}
	})

	t.Run("yaml", func(t *testing.T) {
		code, out, _ := run("status", "--kubeconfig", kc, "--output", "yaml")
		var r statusview.Report
		if err := yaml.Unmarshal([]byte(out), &r); code != 0 || err != nil || len(r.Problems) != 4 {
			t.Fatalf("exit %d err %v report %+v", code, err, r)
		}
	})

	t.Run("bad output form", func(t *testing.T) {
		if code, _, errOut := run("status", "--kubeconfig", kc, "-o", "wide"); code != cli.ExitUsage || !strings.Contains(errOut, `--output "wide": use one of text, json, yaml`) {
			t.Errorf("exit %d stderr %q", code, errOut)
		}
	})
}

// kubeconfig writes a kubeconfig for server.
func kubeconfig(t *testing.T, server string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	data := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: '" + server + "', insecure-skip-tls-verify: true}}]\n" +
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUnreachable: a server that refuses, one that never answers, and
// credentials the real server refuses each give one line naming the server,
// quickly.
func TestUnreachable(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "https://" + closed.Addr().String()
	closed.Close()

	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never speaks
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	cases := []struct {
		name, server string
		args         []string
		want         string
		within       time.Duration
	}{
		{"connection refused", refused, nil, "cannot reach the API server at " + refused + ": connection refused", 3 * time.Second},
		{"no answer", "https://" + silent.Addr().String(), []string{"--request-timeout", "1s"},
			"no answer from the API server at https://" + silent.Addr().String() + " within the timeout", 4 * time.Second},
		{"credentials refused", cluster.Config.Host, nil, "the API server at " + cluster.Config.Host + " refused the credentials (401 Unauthorized)", 3 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, out, errOut := run(append([]string{"status", "--kubeconfig", kubeconfig(t, tc.server)}, tc.args...)...)
			took := time.Since(start)
			if code != cli.ExitProblems || out != "" {
				t.Errorf("exit %d, stdout %q", code, out)
			}
			if !strings.HasPrefix(errOut, "portico: "+tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("stderr %q, want one line starting %q", errOut, "portico: "+tc.want)
			}
			if took > tc.within {
				t.Errorf("took %v, want under %v", took, tc.within)
			}
		})
	}
}
