package l2plan

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"

	"github.com/portico-lb/portico/internal/election"
)

// MetaVersion is the version of the memberlist metadata format. A speaker
// that reads another version treats the member as ready with unknown
// interfaces (election then does not filter it on carrier).
const MetaVersion = 1

// Meta is what a speaker publishes about itself through memberlist, so the
// other speakers can run the election without the API server.
type Meta struct {
	// Ready is false until the speaker's caches have synced: a speaker that
	// cannot announce yet must not win IPs.
	Ready bool
	// Interfaces are the links the speaker may announce on, with carrier
	// and prefixes. nil means unknown (too many to publish, or a newer
	// format).
	Interfaces []election.Interface
}

// wireMeta is Meta's JSON form; short keys keep it within memberlist's
// 512-byte metadata limit.
type wireMeta struct {
	Version    int         `json:"v"`
	Ready      bool        `json:"r,omitempty"`
	Known      bool        `json:"k,omitempty"`
	Interfaces []wireIface `json:"i,omitempty"`
}

type wireIface struct {
	Name     string   `json:"n"`
	Carrier  bool     `json:"c,omitempty"`
	Prefixes []string `json:"p,omitempty"`
}

// EncodeMeta returns m's wire form in at most limit bytes. When the full
// form is too long it drops the prefixes, then the interfaces (publishing
// them as unknown), so the result always fits (limit must be at least 32).
func EncodeMeta(m Meta, limit int) []byte {
	w := wireMeta{Version: MetaVersion, Ready: m.Ready, Known: m.Interfaces != nil}
	for _, ifc := range sortedIfaces(m.Interfaces) {
		wi := wireIface{Name: ifc.Name, Carrier: ifc.Carrier}
		for _, p := range ifc.Prefixes {
			wi.Prefixes = append(wi.Prefixes, p.String())
		}
		w.Interfaces = append(w.Interfaces, wi)
	}
	b := mustJSON(w)
	if len(b) <= limit {
		return b
	}
	for i := range w.Interfaces {
		w.Interfaces[i].Prefixes = nil
	}
	if b = mustJSON(w); len(b) <= limit {
		return b
	}
	w.Known, w.Interfaces = false, nil
	return mustJSON(w)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // plain structs of strings and bools always marshal
		panic(err)
	}
	return b
}

// DecodeMeta parses metadata published by another speaker. Empty metadata
// (a speaker that has published nothing yet) and other versions (a speaker of
// another release, during an upgrade) yield a ready member with unknown
// interfaces and no error. Malformed metadata yields a member that is NOT
// ready and an error saying what is wrong: a speaker whose state cannot be
// read must not win IPs.
func DecodeMeta(b []byte) (Meta, error) {
	unknown := Meta{Ready: true}
	if len(b) == 0 {
		return unknown, nil
	}
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("malformed speaker metadata: %w", err)
	}
	if w.Version != MetaVersion {
		return unknown, nil
	}
	m := Meta{Ready: w.Ready}
	if !w.Known {
		return m, nil
	}
	m.Interfaces = make([]election.Interface, 0, len(w.Interfaces))
	for _, wi := range w.Interfaces {
		if wi.Name == "" || len(wi.Name) > 15 {
			return Meta{}, fmt.Errorf("malformed speaker metadata: interface name %q", wi.Name)
		}
		ifc := election.Interface{Name: wi.Name, Carrier: wi.Carrier}
		for _, s := range wi.Prefixes {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return Meta{}, fmt.Errorf("malformed speaker metadata: interface %s: %w", wi.Name, err)
			}
			ifc.Prefixes = append(ifc.Prefixes, p)
		}
		m.Interfaces = append(m.Interfaces, ifc)
	}
	return m, nil
}

func sortedIfaces(in []election.Interface) []election.Interface {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b election.Interface) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
