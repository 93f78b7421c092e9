package migrate

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/manifest"
)

var regexpNotAlias = regexp.MustCompile(`[^a-z0-9-]+`)

// The configuration format of MetalLB 0.12 and earlier: YAML in the "config"
// key of the ConfigMap metallb-system/config.
type legacyConfig struct {
	Peers          []legacyPeer      `json:"peers"`
	BGPCommunities map[string]string `json:"bgp-communities"`
	Pools          []legacyPool      `json:"address-pools"`
	BFDProfiles    []legacyBFD       `json:"bfd-profiles"`
}

type legacyPeer struct {
	MyASN         uint32           `json:"my-asn"`
	ASN           uint32           `json:"peer-asn"`
	Addr          string           `json:"peer-address"`
	SrcAddr       string           `json:"source-address"`
	Port          uint16           `json:"peer-port"`
	HoldTime      string           `json:"hold-time"`
	KeepaliveTime string           `json:"keepalive-time"`
	RouterID      string           `json:"router-id"`
	NodeSelectors []legacySelector `json:"node-selectors"`
	Password      string           `json:"password"`
	BFDProfile    string           `json:"bfd-profile"`
	EBGPMultiHop  bool             `json:"ebgp-multihop"`
}

type legacySelector struct {
	MatchLabels      map[string]string `json:"match-labels"`
	MatchExpressions []struct {
		Key      string   `json:"key"`
		Operator string   `json:"operator"`
		Values   []string `json:"values"`
	} `json:"match-expressions"`
}

type legacyPool struct {
	Name              string      `json:"name"`
	Protocol          string      `json:"protocol"`
	Addresses         []string    `json:"addresses"`
	AvoidBuggyIPs     bool        `json:"avoid-buggy-ips"`
	AutoAssign        *bool       `json:"auto-assign"`
	BGPAdvertisements []legacyAdv `json:"bgp-advertisements"`
}

type legacyAdv struct {
	AggregationLength   *int32   `json:"aggregation-length"`
	AggregationLengthV6 *int32   `json:"aggregation-length-v6"`
	LocalPref           *uint32  `json:"localpref"`
	Communities         []string `json:"communities"`
}

type legacyBFD struct {
	Name string `json:"name"`
	bfdLegacyTimers
}

type bfdLegacyTimers struct {
	ReceiveInterval  *uint32 `json:"receive-interval"`
	TransmitInterval *uint32 `json:"transmit-interval"`
	DetectMultiplier *uint32 `json:"detect-multiplier"`
	EchoInterval     *uint32 `json:"echo-interval"`
	EchoMode         *bool   `json:"echo-mode"`
	PassiveMode      *bool   `json:"passive-mode"`
	MinimumTTL       *uint32 `json:"minimum-ttl"`
}

type configMapIn struct {
	mlbMeta
	Data map[string]string `json:"data"`
}

// legacyConfigMap converts a ConfigMap holding MetalLB's old configuration.
// Fields are named as in the configuration, after "data.config: ".
func (c *converter) legacyConfigMap(d *manifest.Document) {
	var cm configMapIn
	if !c.decode(d, d.Object, &cm, "") {
		return
	}
	text, ok := cm.Data["config"]
	if !ok {
		c.fail(d, "data", "a ConfigMap without data.config: not MetalLB's configuration (MetalLB 0.12 and earlier read the ConfigMap metallb-system/config)")
		return
	}
	const prefix = "data.config"
	j, err := yaml.YAMLToJSONStrict([]byte(text))
	if err != nil {
		c.fail(d, prefix, "malformed YAML: %s", strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")), " "))
		return
	}
	raw := map[string]any{}
	if err := yaml.Unmarshal(j, &raw); err != nil {
		c.fail(d, prefix, "not a map of address-pools, peers, bgp-communities and bfd-profiles: %v", err)
		return
	}
	var cfg legacyConfig
	if !c.decode(d, raw, &cfg, prefix) {
		return
	}
	if len(cfg.BGPCommunities) > 0 {
		out := &v1.Community{ObjectMeta: metav1.ObjectMeta{Name: c.name(d, "Community", "bgp-communities")}}
		for _, name := range sortedMapKeys(cfg.BGPCommunities) {
			out.Spec.Communities = append(out.Spec.Communities, v1.CommunityAlias{
				Name:  c.alias(d, prefix+".bgp-communities."+name, name),
				Value: v1.CommunityValue(cfg.BGPCommunities[name]),
			})
		}
		c.add(d, out)
	}
	for i, b := range cfg.BFDProfiles {
		f := fmt.Sprintf("%s.bfd-profiles[%d].", prefix, i)
		out := &v1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: c.name(d, "BFDProfile", b.Name)}}
		// The same timers as the CRD's, under the ConfigMap's field names.
		out.Spec = c.bfdSpec(d, bfdIn(b.bfdLegacyTimers), f, "echo-mode", "echo-interval")
		c.add(d, out)
	}
	for i, p := range cfg.Pools {
		c.legacyPool(d, fmt.Sprintf("%s.address-pools[%d].", prefix, i), p, nil)
	}
	for i, p := range cfg.Peers {
		c.legacyPeer(d, fmt.Sprintf("%s.peers[%d].", prefix, i), p)
	}
}

// legacyPool converts a pool that carries its protocol and BGP advertisements,
// as the ConfigMap and the AddressPool kind do: an IPAddressPool, and an
// L2Advertisement or BGPAdvertisements for it, named after it.
func (c *converter) legacyPool(d *manifest.Document, prefix string, p legacyPool, labels map[string]string) {
	if p.Name == "" {
		c.fail(d, prefix+"name", "Required value: every pool has a name")
		return
	}
	name := c.name(d, "IPAddressPool", p.Name)
	pool := &v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	pool.Spec.Addresses = c.addresses(d, prefix+"addresses", p.Addresses)
	pool.Spec.AutoAssign = p.AutoAssign
	pool.Spec.AvoidBuggyIPs = p.AvoidBuggyIPs
	c.add(d, pool)
	sel := v1.PoolAndNodeSelection{IPAddressPools: []string{name}}
	switch p.Protocol {
	case "layer2":
		c.add(d, &v1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: c.name(d, "L2Advertisement", name)}, Spec: v1.L2AdvertisementSpec{PoolAndNodeSelection: sel}})
		if len(p.BGPAdvertisements) > 0 {
			c.note(d, prefix+"bgp-advertisements", "not carried over: the pool's protocol is layer2, and MetalLB ignores them too")
		}
	case "bgp":
		advs := p.BGPAdvertisements
		if len(advs) == 0 {
			advs = []legacyAdv{{}} // MetalLB's default: every IP on its own, no attributes
		}
		for i, a := range advs {
			advName := name
			if i > 0 {
				advName = fmt.Sprintf("%s-%d", name, i+1)
			}
			out := &v1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: c.name(d, "BGPAdvertisement", advName)}}
			out.Spec.PoolAndNodeSelection = sel
			out.Spec.AggregationLength, out.Spec.AggregationLengthV6 = a.AggregationLength, a.AggregationLengthV6
			if a.LocalPref != nil {
				lp := int64(*a.LocalPref)
				out.Spec.LocalPref = &lp
			}
			out.Spec.Communities = c.communities(a.Communities)
			c.add(d, out)
		}
	case "":
		c.note(d, prefix+"protocol", "missing: the pool is converted without an advertisement, so its addresses are allocated but not announced; add an L2Advertisement or a BGPAdvertisement for it")
	default:
		c.note(d, prefix+"protocol", "unknown protocol %q (MetalLB has layer2 and bgp): the pool is converted without an advertisement", p.Protocol)
	}
}

// legacyPeer converts a peer of the ConfigMap; it is named after its address.
func (c *converter) legacyPeer(d *manifest.Document, prefix string, p legacyPeer) {
	out := &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: c.name(d, "BGPPeer", "peer-"+strings.NewReplacer(".", "-", ":", "-").Replace(p.Addr))}}
	out.Spec = v1.BGPPeerSpec{
		MyASN: v1.ASN(p.MyASN), PeerASN: v1.ASN(p.ASN), PeerAddress: p.Addr, PeerPort: int32(p.Port),
		SourceAddress: p.SrcAddr, RouterID: p.RouterID, EBGPMultiHop: p.EBGPMultiHop,
	}
	out.Spec.HoldTime = c.legacyDuration(d, prefix+"hold-time", p.HoldTime)
	out.Spec.KeepaliveTime = c.legacyDuration(d, prefix+"keepalive-time", p.KeepaliveTime)
	if p.BFDProfile != "" {
		out.Spec.BFDProfile = c.ref("BFDProfile", p.BFDProfile)
	}
	for _, s := range p.NodeSelectors {
		sel := metav1.LabelSelector{MatchLabels: s.MatchLabels}
		for _, e := range s.MatchExpressions {
			sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{Key: e.Key, Operator: legacyOperator(e.Operator), Values: e.Values})
		}
		out.Spec.NodeSelectors = append(out.Spec.NodeSelectors, sel)
	}
	if p.Password != "" {
		out.Spec.PasswordSecretRef = c.passwordSecret(d, prefix+"password", out.Name, p.Password)
	}
	c.add(d, out)
}

// legacyOperator spells a selector operator as Kubernetes does; MetalLB's
// old configuration accepted any case ("in", "notin").
func legacyOperator(op string) metav1.LabelSelectorOperator {
	for _, known := range []metav1.LabelSelectorOperator{metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn, metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist} {
		if strings.EqualFold(op, string(known)) {
			return known
		}
	}
	return metav1.LabelSelectorOperator(op)
}

func (c *converter) legacyDuration(d *manifest.Document, field, s string) *metav1.Duration {
	if s == "" {
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		c.fail(d, field, "%q is not a duration such as 90s", s)
		return nil
	}
	return &metav1.Duration{Duration: v}
}

func sortedMapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
