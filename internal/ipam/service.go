package ipam

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Service is what the allocator needs to know about a Service: who it is,
// the sharing rules it brings to an IP, and the labels used for pinning.
type Service struct {
	// Key is "namespace/name".
	Key string
	// SharingKey is the allow-shared-ip key; "" refuses sharing. A key
	// "cluster:<key>" is cluster-wide, any other key is matched within the
	// service's namespace only.
	SharingKey string
	// Ports are the (protocol, port) pairs the service exposes.
	Ports []Port
	// Local is true for externalTrafficPolicy: Local. BackendKey then
	// identifies the pods it selects (e.g. its canonical selector); services
	// sharing an IP with Local policy must have equal BackendKeys, because
	// the IP is announced only from nodes running those pods.
	Local      bool
	BackendKey string
	// Labels and NamespaceLabels are used by pool pinning (SelectPools).
	Labels          map[string]string
	NamespaceLabels map[string]string
}

// Port is one (protocol, port) pair, e.g. {"TCP", 80}.
type Port struct {
	Protocol string
	Port     uint16
}

func (p Port) String() string { return fmt.Sprintf("%s/%d", p.Protocol, p.Port) }

func comparePorts(a, b Port) int {
	if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

// Namespace returns the namespace part of Key.
func (s *Service) Namespace() string {
	ns, _, _ := strings.Cut(s.Key, "/")
	return ns
}

const clusterPrefix = "cluster:"

// scopedKey returns the sharing key with its scope made explicit, so that
// equal scoped keys mean "may share"; "" if the service does not share.
func (s *Service) scopedKey() string {
	if s.SharingKey == "" {
		return ""
	}
	if strings.HasPrefix(s.SharingKey, clusterPrefix) {
		return s.SharingKey
	}
	return "ns:" + s.Namespace() + "/" + s.SharingKey
}

func (s *Service) validate() error {
	ns, name, ok := strings.Cut(s.Key, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return errorf(ReasonInvalid, "service key %q is not of the form namespace/name", s.Key)
	}
	if s.SharingKey == clusterPrefix {
		return errorf(ReasonInvalid, "sharing key %q of %s names no key after %q", s.SharingKey, s.Key, clusterPrefix)
	}
	return nil
}

// normalized returns a copy of s whose ports are sorted and de-duplicated,
// so that comparisons and messages are deterministic and s's caller may
// reuse its slices.
func (s Service) normalized() Service {
	s.Ports = slices.Clone(s.Ports)
	slices.SortFunc(s.Ports, comparePorts)
	s.Ports = slices.Compact(s.Ports)
	return s
}

// sameSharing reports whether a and b bring the same sharing rules.
func sameSharing(a, b *Service) bool {
	return a.scopedKey() == b.scopedKey() && a.Local == b.Local && a.BackendKey == b.BackendKey && slices.Equal(a.Ports, b.Ports)
}

// canShare returns nil if s may hold ip alongside h, which already holds it,
// or an error naming h and the rule that forbids it. Both are normalized.
func canShare(ip fmt.Stringer, h, s *Service) error {
	switch {
	case h.SharingKey == "" && s.SharingKey == "":
		return errorf(ReasonAddressInUse, "%s is already used by %s; to share it, give both services the same sharing key", ip, h.Key)
	case s.SharingKey == "":
		return errorf(ReasonAddressInUse, "%s is used by %s, which shares it only with sharing key %q, and this service has no sharing key", ip, h.Key, h.SharingKey)
	case h.SharingKey == "":
		return errorf(ReasonAddressInUse, "%s is used by %s, which has no sharing key, so it cannot be shared", ip, h.Key)
	case h.SharingKey != s.SharingKey:
		return errorf(ReasonAddressInUse, "%s is used by %s and the sharing keys differ (%q vs %q)", ip, h.Key, h.SharingKey, s.SharingKey)
	case h.scopedKey() != s.scopedKey():
		return errorf(ReasonAddressInUse, "%s is used by %s in another namespace; sharing key %q applies within one namespace, use %q on both services to share across namespaces",
			ip, h.Key, s.SharingKey, clusterPrefix+s.SharingKey)
	}
	if h.Local != s.Local {
		return errorf(ReasonAddressInUse, "%s is used by %s with externalTrafficPolicy %s and this service uses %s; services sharing an IP must both use Cluster, or both use Local and select the same pods",
			ip, h.Key, policy(h.Local), policy(s.Local))
	}
	if h.Local && h.BackendKey != s.BackendKey {
		return errorf(ReasonAddressInUse, "%s is used by %s, which selects different pods (backend keys %q vs %q); services sharing an IP with externalTrafficPolicy Local must select the same pods",
			ip, h.Key, h.BackendKey, s.BackendKey)
	}
	if clash := commonPorts(h.Ports, s.Ports); len(clash) > 0 {
		names := make([]string, len(clash))
		for i, p := range clash {
			names[i] = p.String()
		}
		if len(clash) == 1 {
			return errorf(ReasonPortConflict, "port %s on %s is already used by %s", names[0], ip, h.Key)
		}
		return errorf(ReasonPortConflict, "ports %s on %s are already used by %s", strings.Join(names, ", "), ip, h.Key)
	}
	return nil
}

func policy(local bool) string {
	if local {
		return "Local"
	}
	return "Cluster"
}

// commonPorts returns the pairs in both sorted lists.
func commonPorts(a, b []Port) []Port {
	var out []Port
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch c := comparePorts(a[i], b[j]); {
		case c < 0:
			i++
		case c > 0:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}
