package migrate

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/manifest"
)

// The MetalLB input types: the fields of metallb.io v1beta1 and v1beta2 that
// the conversion reads. A field missing here is reported as not carried over.

type mlbMeta struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Status     any               `json:"status,omitempty"`
}

type mlbPool struct {
	mlbMeta
	Spec struct {
		Addresses         []string `json:"addresses"`
		AutoAssign        *bool    `json:"autoAssign"`
		AvoidBuggyIPs     bool     `json:"avoidBuggyIPs"`
		ServiceAllocation *struct {
			Priority           int                    `json:"priority"`
			Namespaces         []string               `json:"namespaces"`
			NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors"`
			ServiceSelectors   []metav1.LabelSelector `json:"serviceSelectors"`
		} `json:"serviceAllocation"`
	} `json:"spec"`
}

type mlbSelection struct {
	IPAddressPools         []string               `json:"ipAddressPools"`
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors"`
}

type mlbL2Adv struct {
	mlbMeta
	Spec struct {
		mlbSelection
		Interfaces []string `json:"interfaces"`
	} `json:"spec"`
}

type mlbBGPAdv struct {
	mlbMeta
	Spec struct {
		mlbSelection
		AggregationLength   *int32   `json:"aggregationLength"`
		AggregationLengthV6 *int32   `json:"aggregationLengthV6"`
		LocalPref           uint32   `json:"localPref"`
		Communities         []string `json:"communities"`
		Peers               []string `json:"peers"`
	} `json:"spec"`
}

// mlbPeer reads v1beta1 and v1beta2 BGPPeers (v1beta1 has a subset of the
// fields, and its node selectors have the shape of a label selector).
type mlbPeer struct {
	mlbMeta
	Spec struct {
		MyASN                  uint32                 `json:"myASN"`
		PeerASN                uint32                 `json:"peerASN"`
		DynamicASN             string                 `json:"dynamicASN"`
		PeerAddress            string                 `json:"peerAddress"`
		Interface              string                 `json:"interface"`
		SourceAddress          string                 `json:"sourceAddress"`
		PeerPort               uint16                 `json:"peerPort"`
		HoldTime               *metav1.Duration       `json:"holdTime"`
		KeepaliveTime          *metav1.Duration       `json:"keepaliveTime"`
		ConnectTime            *metav1.Duration       `json:"connectTime"`
		RouterID               string                 `json:"routerID"`
		NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors"`
		Password               string                 `json:"password"`
		PasswordSecret         *secretReference       `json:"passwordSecret"`
		BFDProfile             string                 `json:"bfdProfile"`
		EnableGracefulRestart  bool                   `json:"enableGracefulRestart"`
		EBGPMultiHop           bool                   `json:"ebgpMultiHop"`
		VRF                    string                 `json:"vrf"`
		DisableMP              bool                   `json:"disableMP"`
		DualStackAddressFamily bool                   `json:"dualStackAddressFamily"`
	} `json:"spec"`
}

type secretReference struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

type mlbBFD struct {
	mlbMeta
	Spec bfdIn `json:"spec"`
}

// bfdIn is MetalLB's BFD profile, in the CRD's field names.
type bfdIn struct {
	ReceiveInterval  *uint32 `json:"receiveInterval"`
	TransmitInterval *uint32 `json:"transmitInterval"`
	DetectMultiplier *uint32 `json:"detectMultiplier"`
	EchoInterval     *uint32 `json:"echoInterval"`
	EchoMode         *bool   `json:"echoMode"`
	PassiveMode      *bool   `json:"passiveMode"`
	MinimumTTL       *uint32 `json:"minimumTtl"`
}

type mlbCommunity struct {
	mlbMeta
	Spec struct {
		Communities []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"communities"`
	} `json:"spec"`
}

// mlbAddressPool is the AddressPool kind of MetalLB 0.12 and 0.13 (removed
// since): a pool with its protocol and BGP advertisements inside.
type mlbAddressPool struct {
	mlbMeta
	Spec struct {
		Protocol          string   `json:"protocol"`
		Addresses         []string `json:"addresses"`
		AutoAssign        *bool    `json:"autoAssign"`
		AvoidBuggyIPs     bool     `json:"avoidBuggyIPs"`
		BGPAdvertisements []struct {
			AggregationLength   *int32   `json:"aggregationLength"`
			AggregationLengthV6 *int32   `json:"aggregationLengthV6"`
			LocalPref           uint32   `json:"localPref"`
			Communities         []string `json:"communities"`
		} `json:"bgpAdvertisements"`
	} `json:"spec"`
}

type secretIn struct {
	mlbMeta
	Type       string            `json:"type"`
	Data       map[string]string `json:"data"`
	StringData map[string]string `json:"stringData"`
}

// stage orders the conversion so that names are settled before the objects
// that refer to them are converted.
var mlbStage = map[string]int{
	"Secret": 0, "Community": 1, "BFDProfile": 2, "IPAddressPool": 3, "AddressPool": 3, "ConfigMap": 3,
	"BGPPeer": 4, "L2Advertisement": 5, "BGPAdvertisement": 5,
}

// mlbStatusKinds are written by MetalLB itself.
var mlbStatusKinds = []string{"ServiceL2Status", "ServiceBGPStatus", "ConfigurationState"}

// metallb converts MetalLB objects.
func (c *converter) metallb(docs []manifest.Document) {
	var todo []*manifest.Document
	for i := range docs {
		d := &docs[i]
		if d.Err != nil {
			c.fail(d, "", "%v", d.Err)
			continue
		}
		group, version := groupVersion(d.APIVersion())
		kind := d.Kind()
		switch {
		case group == "metallb.io" && slices.Contains(mlbStatusKinds, kind):
			c.note(d, "", "not converted: MetalLB writes %s objects itself; Portico's status is in SpeakerStatus and ServiceAnnouncement objects", kind)
		case group == "metallb.io" && mlbStage[kind] != 0 && (version == "v1beta1" || version == "v1beta2" || (kind == "AddressPool" && version == "v1alpha1")):
			todo = append(todo, d)
		case group == "metallb.io" && mlbStage[kind] != 0:
			c.fail(d, "apiVersion", "unknown MetalLB version %q: portico migrate reads metallb.io/v1beta1 (and v1beta2 for BGPPeer)", d.APIVersion())
		case group == "metallb.io":
			c.note(d, "", "not converted: Portico has no equivalent of MetalLB's %s", kind)
		case d.APIVersion() == "v1" && (kind == "ConfigMap" || kind == "Secret"):
			todo = append(todo, d)
		default:
			c.foreign(d, MetalLB)
		}
	}
	slices.SortStableFunc(todo, func(a, b *manifest.Document) int { return mlbStage[a.Kind()] - mlbStage[b.Kind()] })
	secrets := map[string]*secretIn{}
	used := map[string]bool{}
	for _, d := range todo {
		switch d.Kind() {
		case "Secret":
			var s secretIn
			if c.decode(d, d.Object, &s, "") {
				secrets[s.Metadata.Namespace+"/"+s.Metadata.Name] = &s
			}
		case "Community":
			c.mlbCommunity(d)
		case "BFDProfile":
			c.mlbBFD(d)
		case "IPAddressPool":
			c.mlbPool(d)
		case "AddressPool":
			c.mlbAddressPool(d)
		case "ConfigMap":
			c.legacyConfigMap(d)
		case "BGPPeer":
			c.mlbPeer(d, secrets, used)
		case "L2Advertisement":
			c.mlbL2(d)
		case "BGPAdvertisement":
			c.mlbBGPAdv(d)
		}
	}
	for _, d := range todo {
		if d.Kind() == "Secret" && !used[d.Namespace()+"/"+d.Name()] {
			c.note(d, "", "not converted: no MetalLB BGPPeer names this Secret")
		}
	}
}

// foreign reports a document that is not the input of this conversion.
func (c *converter) foreign(d *manifest.Document, from From) {
	group, _ := groupVersion(d.APIVersion())
	switch {
	case d.APIVersion() == "" || d.Kind() == "":
		c.fail(d, "", "not a Kubernetes object: apiVersion and kind are required")
	case group == "portico.dev":
		c.fail(d, "", "already a Portico object: give portico migrate only %s configuration (check Portico objects with `portico check`)", from.Name())
	case group == "metallb.io" || group == "network.kubesphere.io":
		other := MetalLB
		if group == "network.kubesphere.io" {
			other = OpenELB
		}
		c.fail(d, "", "an %s object in %s input: convert it with `portico migrate --from %s`", other.Name(), from.Name(), other)
	default:
		c.fail(d, "", "not %s configuration (%s %s): give portico migrate only %s's configuration objects", from.Name(), d.APIVersion(), d.Kind(), from.Name())
	}
}

func groupVersion(apiVersion string) (string, string) {
	g, v, ok := strings.Cut(apiVersion, "/")
	if !ok {
		return "", apiVersion
	}
	return g, v
}

// meta returns the metadata of a converted object: the (possibly renamed)
// name and the labels (advertisements select pools by label). The namespace
// goes: Portico's kinds are cluster-scoped.
func (c *converter) meta(d *manifest.Document, kind string, m metav1.ObjectMeta) metav1.ObjectMeta {
	c.annotationNotes(d, m.Annotations)
	return metav1.ObjectMeta{Name: c.name(d, kind, m.Name), Labels: m.Labels}
}

// annotationNotes reports the annotations that are not carried over (all but
// kubectl's own).
func (c *converter) annotationNotes(d *manifest.Document, annotations map[string]string) {
	var dropped []string
	for k := range annotations {
		if !strings.HasPrefix(k, "kubectl.kubernetes.io/") {
			dropped = append(dropped, k)
		}
	}
	if len(dropped) > 0 {
		slices.Sort(dropped)
		c.note(d, "metadata.annotations", "not carried over (%s): annotations of MetalLB or OpenELB objects mean nothing to Portico", strings.Join(dropped, ", "))
	}
}

func (c *converter) mlbCommunity(d *manifest.Document) {
	var in mlbCommunity
	if !c.decode(d, d.Object, &in, "") {
		return
	}
	out := &v1.Community{ObjectMeta: c.meta(d, "Community", in.Metadata)}
	for i, cm := range in.Spec.Communities {
		out.Spec.Communities = append(out.Spec.Communities, v1.CommunityAlias{
			Name:  c.alias(d, fmt.Sprintf("spec.communities[%d].name", i), cm.Name),
			Value: v1.CommunityValue(cm.Value),
		})
	}
	c.add(d, out)
}

// alias returns the Portico name of a community alias: MetalLB allows names
// such as NO_ADVERTISE, Portico's are lowercase letters, digits and '-'.
func (c *converter) alias(d *manifest.Document, field, in string) string {
	const kind = "community alias"
	if c.names[kind] == nil {
		c.names[kind] = map[string]string{}
	}
	out := strings.Trim(regexpNotAlias.ReplaceAllString(strings.ToLower(in), "-"), "-")
	if len(out) > 63 {
		out = strings.Trim(out[:63], "-")
	}
	if out != in {
		c.note(d, field, "community alias %q renamed %q (Portico's alias names are lowercase letters, digits and '-'); the BGPAdvertisements that use it are changed too", in, out)
	}
	c.names[kind][in] = out
	return out
}

// communities converts the communities of an advertisement: values are kept,
// alias names follow their renaming.
func (c *converter) communities(in []string) []v1.CommunityRef {
	var out []v1.CommunityRef
	for _, s := range in {
		if !strings.Contains(s, ":") {
			s = c.ref("community alias", s)
		}
		out = append(out, v1.CommunityRef(s))
	}
	return out
}

func (c *converter) mlbBFD(d *manifest.Document) {
	var in mlbBFD
	if !c.decode(d, d.Object, &in, "") {
		return
	}
	out := &v1.BFDProfile{ObjectMeta: c.meta(d, "BFDProfile", in.Metadata)}
	out.Spec = c.bfdSpec(d, in.Spec, "spec.", "echoMode", "echoInterval")
	c.add(d, out)
}

// bfdSpec converts BFD timers; echo names the echo fields as the input
// writes them, for the notes.
func (c *converter) bfdSpec(d *manifest.Document, in bfdIn, prefix, echoMode, echoInterval string) v1.BFDProfileSpec {
	i32 := func(p *uint32) *int32 {
		if p == nil {
			return nil
		}
		v := int32(min(*p, 1<<31-1))
		return &v
	}
	out := v1.BFDProfileSpec{
		ReceiveInterval:  i32(in.ReceiveInterval),
		TransmitInterval: i32(in.TransmitInterval),
		DetectMultiplier: i32(in.DetectMultiplier),
		MinimumTTL:       i32(in.MinimumTTL),
		PassiveMode:      in.PassiveMode != nil && *in.PassiveMode,
	}
	if in.EchoMode != nil && *in.EchoMode {
		c.note(d, prefix+echoMode, "not carried over: Portico's BFD (gobgp's) has no echo mode; the sessions run asynchronous BFD with the profile's timers")
	}
	if in.EchoInterval != nil {
		c.note(d, prefix+echoInterval, "not carried over: Portico's BFD has no echo mode")
	}
	if out.PassiveMode {
		c.note(d, prefix+"passiveMode", "carried over, but gobgp always sends BFD packets: the session's status says so and BFD runs actively")
	}
	return out
}

func (c *converter) mlbPool(d *manifest.Document) {
	var in mlbPool
	if !c.decode(d, d.Object, &in, "") {
		return
	}
	out := &v1.IPAddressPool{ObjectMeta: c.meta(d, "IPAddressPool", in.Metadata)}
	out.Spec.Addresses = c.addresses(d, "spec.addresses", in.Spec.Addresses)
	out.Spec.AutoAssign = in.Spec.AutoAssign
	out.Spec.AvoidBuggyIPs = in.Spec.AvoidBuggyIPs
	if sa := in.Spec.ServiceAllocation; sa != nil {
		al := &v1.ServiceAllocation{Priority: int32(max(0, min(sa.Priority, 1000000))), Namespaces: sa.Namespaces}
		if sa.Priority != int(al.Priority) {
			c.note(d, "spec.serviceAllocation.priority", "%d is outside Portico's 0-1000000: written as %d (lower is still tried first)", sa.Priority, al.Priority)
		}
		al.NamespaceSelector = c.oneSelector(d, "spec.serviceAllocation.namespaceSelectors", sa.NamespaceSelectors)
		al.ServiceSelector = c.oneSelector(d, "spec.serviceAllocation.serviceSelectors", sa.ServiceSelectors)
		out.Spec.Allocation = al
	}
	c.add(d, out)
}

// oneSelector turns MetalLB's list of selectors (any may match) into Portico's
// single selector: one selector as it is; several that each ask for one value
// of the same label as one "In" expression; otherwise the first, with a note.
func (c *converter) oneSelector(d *manifest.Document, field string, sels []metav1.LabelSelector) *metav1.LabelSelector {
	switch len(sels) {
	case 0:
		return nil
	case 1:
		return &sels[0]
	}
	key, values := "", []string{}
	for _, s := range sels {
		if len(s.MatchExpressions) != 0 || len(s.MatchLabels) != 1 {
			key = ""
			break
		}
		for k, v := range s.MatchLabels {
			if key != "" && k != key {
				key = ""
				break
			}
			key = k
			values = append(values, v)
		}
		if key == "" {
			break
		}
	}
	if key != "" {
		c.note(d, field, "%d selectors on label %s merged into one selector with %s In (%s): same meaning", len(sels), key, key, strings.Join(values, ", "))
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: metav1.LabelSelectorOpIn, Values: values}}}
	}
	what := "Services"
	if strings.Contains(field, "namespace") {
		what = "namespaces"
	}
	c.note(d, field, "only the first of %d selectors carried over: Portico takes one selector here, and these cannot be merged into one; the pool now admits fewer %s than before: label them to match the first selector, or split the pool", len(sels), what)
	return &sels[0]
}

// addresses converts pool entries. MetalLB also accepts ranges with spaces
// ("192.0.2.1 - 192.0.2.9") and CIDRs with host bits (192.0.2.5/24, meaning
// 192.0.2.0/24); Portico wants them written exactly.
func (c *converter) addresses(d *manifest.Document, field string, in []string) []v1.AddressEntry {
	var out []v1.AddressEntry
	for i, a := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		s := strings.TrimSpace(a)
		if lo, hi, ok := strings.Cut(s, "-"); ok {
			s = strings.TrimSpace(lo) + "-" + strings.TrimSpace(hi)
		}
		if p, err := netip.ParsePrefix(s); err == nil && p != p.Masked() {
			c.note(d, f, "%s has host bits set; MetalLB and OpenELB read it as %s, which is written instead", s, p.Masked())
			s = p.Masked().String()
		}
		if s != a && !strings.Contains(a, "/") {
			c.note(d, f, "%q written as %q (Portico's ranges have no spaces)", a, s)
		}
		out = append(out, v1.AddressEntry(s))
	}
	return out
}

func (c *converter) mlbAddressPool(d *manifest.Document) {
	var in mlbAddressPool
	if !c.decode(d, d.Object, &in, "") {
		return
	}
	p := legacyPool{Name: in.Metadata.Name, Protocol: in.Spec.Protocol, Addresses: in.Spec.Addresses, AutoAssign: in.Spec.AutoAssign, AvoidBuggyIPs: in.Spec.AvoidBuggyIPs}
	for _, a := range in.Spec.BGPAdvertisements {
		la := legacyAdv{AggregationLength: a.AggregationLength, AggregationLengthV6: a.AggregationLengthV6, Communities: a.Communities}
		if a.LocalPref != 0 {
			la.LocalPref = &a.LocalPref
		}
		p.BGPAdvertisements = append(p.BGPAdvertisements, la)
	}
	c.note(d, "", "MetalLB's AddressPool kind becomes an IPAddressPool and the advertisement its protocol implies")
	c.legacyPool(d, "spec.", p, in.Metadata.Labels)
}

func (c *converter) mlbSelection(in mlbSelection) v1.PoolAndNodeSelection {
	out := v1.PoolAndNodeSelection{IPAddressPoolSelectors: in.IPAddressPoolSelectors, NodeSelectors: in.NodeSelectors}
	for _, p := range in.IPAddressPools {
		out.IPAddressPools = append(out.IPAddressPools, c.ref("IPAddressPool", p))
	}
	return out
}

func (c *converter) mlbL2(d *manifest.Document) {
	var in mlbL2Adv
	if !c.decode(d, d.Object, &in, "") {
		return
	}
	out := &v1.L2Advertisement{ObjectMeta: c.meta(d, "L2Advertisement", in.Metadata)}
	out.Spec.PoolAndNodeSelection = c.mlbSelection(in.Spec.mlbSelection)
	out.Spec.Interfaces = in.Spec.Interfaces
	c.add(d, out)
}

func (c *converter) mlbBGPAdv(d *manifest.Document) {
	var in mlbBGPAdv
	if !c.decode(d, d.Object, &in, "") {
		return
	}
	out := &v1.BGPAdvertisement{ObjectMeta: c.meta(d, "BGPAdvertisement", in.Metadata)}
	out.Spec.PoolAndNodeSelection = c.mlbSelection(in.Spec.mlbSelection)
	out.Spec.AggregationLength = in.Spec.AggregationLength
	out.Spec.AggregationLengthV6 = in.Spec.AggregationLengthV6
	if in.Spec.LocalPref != 0 {
		lp := int64(in.Spec.LocalPref)
		out.Spec.LocalPref = &lp
	}
	out.Spec.Communities = c.communities(in.Spec.Communities)
	for _, p := range in.Spec.Peers {
		out.Spec.Peers = append(out.Spec.Peers, c.ref("BGPPeer", p))
	}
	c.add(d, out)
}

func (c *converter) mlbPeer(d *manifest.Document, secrets map[string]*secretIn, used map[string]bool) {
	var in mlbPeer
	if !c.decode(d, d.Object, &in, "") {
		return
	}
	s := in.Spec
	out := &v1.BGPPeer{ObjectMeta: c.meta(d, "BGPPeer", in.Metadata)}
	out.Spec = v1.BGPPeerSpec{
		MyASN: v1.ASN(s.MyASN), PeerASN: v1.ASN(s.PeerASN), PeerAddress: s.PeerAddress, PeerPort: int32(s.PeerPort),
		SourceAddress: s.SourceAddress, RouterID: s.RouterID, HoldTime: s.HoldTime, KeepaliveTime: s.KeepaliveTime,
		ConnectTime: s.ConnectTime, EBGPMultiHop: s.EBGPMultiHop, GracefulRestart: s.EnableGracefulRestart,
		NodeSelectors: s.NodeSelectors,
	}
	if s.BFDProfile != "" {
		out.Spec.BFDProfile = c.ref("BFDProfile", s.BFDProfile)
	}
	switch s.DynamicASN {
	case "":
	case "internal":
		out.Spec.PeerASN = out.Spec.MyASN
		c.note(d, "spec.dynamicASN", "internal: written as peerASN %d (iBGP: the router's AS is the nodes' AS); Portico needs the router's AS number", s.MyASN)
	default:
		c.note(d, "spec.dynamicASN", "not carried over: Portico needs the router's AS number (%s means any AS but %d); set spec.peerASN in the converted BGPPeer", s.DynamicASN, s.MyASN)
	}
	if s.Interface != "" {
		c.note(d, "spec.interface", "not carried over: Portico has no unnumbered BGP (a session over interface %s); set spec.peerAddress to the router's address on that link", s.Interface)
	}
	if s.VRF != "" {
		c.note(d, "spec.vrf", "not carried over: Portico opens sessions in the node's default VRF, not in VRF %q; the converted peer is dialled from the default VRF: delete it if the router is reachable only through that VRF", s.VRF)
	}
	if s.DisableMP {
		c.note(d, "spec.disableMP", "not carried over: Portico carries IPv4 and IPv6 routes over every session (multiprotocol BGP), it cannot keep one session per family")
	}
	if s.DualStackAddressFamily {
		c.note(d, "spec.dualStackAddressFamily", "not needed: Portico always carries IPv4 and IPv6 routes over every session")
	}
	switch {
	case s.Password != "":
		out.Spec.PasswordSecretRef = c.passwordSecret(d, "spec.password", out.Name, s.Password)
		if s.PasswordSecret != nil && s.PasswordSecret.Name != "" {
			c.note(d, "spec.passwordSecret", "not carried over: spec.password is set too, and MetalLB uses it")
		}
	case s.PasswordSecret != nil && s.PasswordSecret.Name != "":
		out.Spec.PasswordSecretRef = c.copySecret(d, s.PasswordSecret, in.Metadata.Namespace, secrets, used)
	}
	c.add(d, out)
}

// copySecret points a peer at a copy, in Portico's namespace, of the Secret
// MetalLB reads its password from, with the command that makes the copy.
func (c *converter) copySecret(d *manifest.Document, ref *secretReference, defaultNS string, secrets map[string]*secretIn, used map[string]bool) *v1.SecretKeyRef {
	ns := ref.Namespace
	if ns == "" {
		ns = defaultNS
	}
	if ns == "" {
		ns = "metallb-system"
	}
	used[ns+"/"+ref.Name] = true
	n := c.note(d, "spec.passwordSecret", "Portico reads Secrets only in its own namespace (%s): copy %s/%s there with the command shown; the converted BGPPeer names the copy (key \"password\", as MetalLB's)",
		c.opts.Namespace, ns, ref.Name)
	if s := secrets[ns+"/"+ref.Name]; s != nil {
		pw, ok := s.StringData["password"]
		if !ok {
			raw, err := base64.StdEncoding.DecodeString(s.Data["password"])
			pw, ok = string(raw), err == nil && s.Data["password"] != ""
		}
		if ok {
			n.Command = fmt.Sprintf("kubectl create secret generic %s -n %s --from-literal=password=%s", ref.Name, c.opts.Namespace, shellQuote(pw))
			return &v1.SecretKeyRef{Name: ref.Name}
		}
	}
	n.Command = fmt.Sprintf(`kubectl create secret generic %s -n %s --from-literal=password="$(kubectl get secret %s -n %s -o jsonpath='{.data.password}' | base64 -d)"`,
		ref.Name, c.opts.Namespace, ref.Name, ns)
	return &v1.SecretKeyRef{Name: ref.Name}
}
