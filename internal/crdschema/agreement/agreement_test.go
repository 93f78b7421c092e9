package agreement

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portico-lb/portico/internal/crdschema"
	"github.com/portico-lb/portico/internal/manifest"
	"github.com/portico-lb/portico/internal/testcluster"
)

var cluster *testcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(testcluster.Main(m, &cluster))
}

// objects are sent to both checkers; each is "KIND; NAME; SPEC" in flow YAML.
var objects = []string{
	"IPAddressPool; every-form; {addresses: [192.0.2.0/24, 198.51.100.1-198.51.100.1, 203.0.113.9, '2001:db8::/64', '2001:db8:1::1-2001:db8:1::ff', 0.0.0.0/0]}",
	"IPAddressPool; not-an-address; {addresses: [192.0.2.0/24, not-an-address]}",
	"IPAddressPool; spaces; {addresses: [192.0.2.1 - 192.0.2.9]}",
	"IPAddressPool; reversed; {addresses: [198.51.100.9-198.51.99.200]}",
	"IPAddressPool; mixed; {addresses: [192.0.2.1-2001:db8::1]}",
	"IPAddressPool; host-bits; {addresses: [192.0.2.5/24, '2001:db8::5/64']}",
	"IPAddressPool; mapped; {addresses: ['::ffff:192.0.2.1']}",
	"IPAddressPool; zone; {addresses: ['fe80::1%eth0']}",
	"IPAddressPool; ipv6-reversed-is-the-controllers; {addresses: ['2001:db8::9-2001:db8::1']}",
	"IPAddressPool; leading-dash; {addresses: [-192.0.2.1]}",
	"IPAddressPool; empty; {addresses: []}",
	"IPAddressPool; typo; {adresses: [192.0.2.0/24]}",
	"IPAddressPool; priority; {addresses: [192.0.2.0/24], allocation: {priority: -1, namespaces: [a, a]}}",
	"BGPPeer; good; {myASN: 1, peerASN: 4294967295, peerAddress: '2001:db8::1', holdTime: 0s, keepaliveTime: 0s, routerID: 0.0.0.0}",
	"BGPPeer; timers; {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, holdTime: 1.5h, keepaliveTime: 2999ms, connectTime: 65535s}",
	"BGPPeer; hold-2999ms; {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, holdTime: 2999ms}",
	"BGPPeer; not-a-duration; {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, holdTime: ninety, connectTime: 0.5s}",
	"BGPPeer; connect-too-long; {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, connectTime: 65536s}",
	"BGPPeer; keepalive-default-hold; {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, keepaliveTime: 2m}",
	"BGPPeer; addresses; {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1/24, sourceAddress: tor1.example, routerID: '2001:db8::2'}",
	"BGPPeer; password; {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, password: secret}",
	"BGPPeer; asn; {myASN: 0, peerASN: 4294967296, peerAddress: 198.51.100.1, peerPort: 0}",
	"BGPPeer; missing; {myASN: 64512}",
	"BFDProfile; bounds; {receiveInterval: 10, transmitInterval: 60000, detectMultiplier: 255, minimumTTL: 1}",
	"BFDProfile; out-of-bounds; {receiveInterval: 9, transmitInterval: 60001, detectMultiplier: 1, minimumTTL: 255}",
	"BFDProfile; echo; {echoMode: true}",
	"BGPAdvertisement; communities; {communities: ['0:0', '65535:65535', 'large:4294967295:0:4294967295', my-alias], aggregationLength: 0, aggregationLengthV6: 128}",
	"BGPAdvertisement; bad-communities; {communities: ['65536:1', '1:2:3', 'large:1:2', 'large:4294967296:1:2', No_Export, 'alias-']}",
	"BGPAdvertisement; lengths; {aggregationLength: 33, aggregationLengthV6: -1, localPref: 4294967296}",
	"BGPAdvertisement; duplicates; {ipAddressPools: [a, b, a], peers: [x, x]}",
	"Community; values; {communities: [{name: a, value: '64500:70000'}, {name: b, value: no-export}, {name: c, value: 'large:1:2:3'}]}",
	"Community; duplicate; {communities: [{name: a, value: '1:1'}, {name: a, value: '1:2'}]}",
	"Community; bad-name; {communities: [{name: No_Export, value: '1:1'}]}",
	"L2Advertisement; interfaces; {interfaces: [eth0, a-name-longer-than-15, '']}",
	"L2Advertisement; selectors; {nodeSelectors: [{matchLabels: {a: b}, matchExpressions: [{key: x, operator: In, values: [z]}]}], ipAddressPoolSelectors: [{matchLabels: {a: b}}]}",
	"L2Advertisement; yaml-boolean; {nodeSelectors: [{matchExpressions: [{key: x, operator: In, values: [yes]}]}]}",
	"L2Advertisement; Bad_Name; {}",
}

// TestRulesAgreeWithAPIServer: for each object, crdschema and the API server
// (dry run, strict field validation, as kubectl apply) must both accept it or
// both refuse it, and every field crdschema names must be named by the server.
func TestRulesAgreeWithAPIServer(t *testing.T) {
	set, err := crdschema.Portico()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, line := range objects {
		parts := strings.SplitN(line, "; ", 3)
		kind, name, spec := parts[0], parts[1], parts[2]
		t.Run(kind+"/"+name, func(t *testing.T) {
			doc := fmt.Sprintf("apiVersion: portico.dev/v1alpha1\nkind: %s\nmetadata: {name: %s}\nspec: %s\n", kind, name, spec)
			docs := manifest.Parse("t", []byte(doc))
			if len(docs) != 1 || docs[0].Err != nil {
				t.Fatalf("bad test input %q: %+v", doc, docs)
			}
			_, mine := set.Lookup("portico.dev/v1alpha1", kind).Validate(docs[0].Object)

			u := &unstructured.Unstructured{Object: docs[0].Object}
			serr := cluster.Client.Create(ctx, u, client.DryRunAll, client.FieldValidation(metav1.FieldValidationStrict))
			if serr != nil && !apierrors.IsInvalid(serr) && !apierrors.IsBadRequest(serr) {
				t.Fatalf("API server: %v", serr)
			}
			switch {
			case serr == nil && len(mine) > 0:
				t.Fatalf("the API server accepts it, crdschema refuses it: %v", mine)
			case serr != nil && len(mine) == 0:
				t.Fatalf("the API server refuses it, crdschema accepts it: %v", serr)
			}
			// A server that meets unknown fields stops there (strict decoding);
			// crdschema goes on and reports the rest too.
			strictOnly := serr != nil && strings.Contains(serr.Error(), "strict decoding error")
			for _, e := range mine {
				if strictOnly && !strings.HasPrefix(e.Message, "unknown field") {
					continue
				}
				if !strings.Contains(serr.Error(), e.Field) {
					t.Errorf("crdschema names field %q (%s); the API server does not:\n%v", e.Field, e.Message, serr)
				}
			}
			t.Logf("API server: %v\ncrdschema: %v", serr, mine)
		})
	}
}
