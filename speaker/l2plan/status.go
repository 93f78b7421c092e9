package l2plan

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/config"
	"github.com/portico-lb/portico/internal/election"
)

// Deputy returns the member that writes the status of IPs no node can
// announce: the first ready member by name, "" when there is none. Every
// speaker agrees on it, so exactly one writes those entries.
func Deputy(members []Member) string {
	best := ""
	for _, m := range members {
		if m.Meta.Ready && (best == "" || m.Name < best) {
			best = m.Name
		}
	}
	return best
}

// Announcements returns the ServiceAnnouncement L2 entries this node is
// responsible for, per Service: the IPs it owns and, when it is the deputy,
// the IPs nobody can announce (with the reason). Entries are sorted by IP.
func (p *Plan) Announcements(local string, deputy bool) map[types.NamespacedName][]porticov1.L2Announcement {
	out := map[types.NamespacedName][]porticov1.L2Announcement{}
	for _, ipp := range p.IPs {
		var e porticov1.L2Announcement
		switch {
		case ipp.Result.Node == local:
			ifs, ok := p.Owned[ipp.IP]
			if !ok {
				continue
			}
			e = porticov1.L2Announcement{IP: ipp.IP.String(), Node: local, Interfaces: slices.Clone(ifs)}
		case !ipp.Result.Elected() && deputy:
			e = porticov1.L2Announcement{IP: ipp.IP.String(), Reason: fmt.Sprintf("%s: %s", ipp.Result.Reason, ipp.Result.Message)}
		default:
			continue
		}
		for _, svc := range ipp.Services {
			out[svc] = append(out[svc], e)
		}
	}
	return out
}

// NodeStatus builds this node's SpeakerStatus status (UpdatedAt left unset,
// so two results compare equal when nothing changed).
func NodeStatus(addr string, members []string, ifaces []election.Interface, macs map[string]string, p *Plan, lastError string) porticov1.SpeakerStatusStatus {
	counts := p.OwnedCount()
	st := porticov1.SpeakerStatusStatus{
		MemberlistAddress: addr,
		Members:           slices.Sorted(slices.Values(members)),
		L2IPs:             int32(len(p.Owned)),
		LastError:         lastError,
	}
	for _, ifc := range sortedIfaces(ifaces) {
		st.Interfaces = append(st.Interfaces, porticov1.InterfaceStatus{
			Name: ifc.Name, MAC: macs[ifc.Name], Carrier: ifc.Carrier, L2IPs: int32(counts[ifc.Name]),
		})
	}
	return st
}

// ProblemsText joins problems into one line for SpeakerStatus.lastError.
func ProblemsText(problems []config.Problem) string {
	parts := make([]string, len(problems))
	for i, p := range problems {
		parts[i] = p.Error()
	}
	return strings.Join(parts, "; ")
}
