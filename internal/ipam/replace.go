package ipam

import (
	"net/netip"
	"slices"
	"strings"
)

// ReplaceIP moves svc from old to ip in one step: old is released and ip is
// assigned as by Assign. If ip cannot be assigned, svc keeps old exactly as
// before and the error says why, so a failed change never loses an address.
// It is how a Service that now requests another IP, or whose IP is no longer
// valid, changes address without a window in which old could be handed out.
func (a *Allocator) ReplaceIP(svc Service, old, ip netip.Addr, pool string) (string, error) {
	if err := checkAssign(&svc, ip); err != nil {
		return "", err
	}
	svc = svc.normalized()
	a.mu.Lock()
	defer a.mu.Unlock()
	undo, err := a.detach(svc.Key, old)
	if err != nil {
		return "", err
	}
	got, err := a.assign(&svc, ip, pool)
	if err != nil {
		undo()
		return "", err
	}
	return got, nil
}

// ReallocateIP moves svc from old to a new address of the same family from
// the first of pools that gives one (as AllocateAny). If none does, svc keeps
// old and the error gives every pool's reason.
func (a *Allocator) ReallocateIP(svc Service, old netip.Addr, pools []string) (netip.Addr, string, error) {
	if err := svc.validate(); err != nil {
		return netip.Addr{}, "", err
	}
	svc = svc.normalized()
	fam := FamilyOf(old)
	a.mu.Lock()
	defer a.mu.Unlock()
	undo, err := a.detach(svc.Key, old)
	if err != nil {
		return netip.Addr{}, "", err
	}
	got, pool, err := a.allocateAny(&svc, pools, fam)
	if err != nil {
		undo()
		return netip.Addr{}, "", err
	}
	return got, pool, nil
}

// detach removes svcKey from old and returns a function that puts it back
// exactly as it was (same sharing rules, same segment, stranded or not).
// The caller holds a.mu.
func (a *Allocator) detach(svcKey string, old netip.Addr) (func(), error) {
	se := a.svcs[svcKey]
	if se == nil || !slices.Contains(se.ips, old) {
		return nil, errorf(ReasonInvalid, "%s does not hold %s", svcKey, old)
	}
	seg := a.ips[old].seg
	a.drop(se, old)
	se.ips = slices.DeleteFunc(se.ips, func(x netip.Addr) bool { return x == old })
	if len(se.ips) == 0 {
		delete(a.svcs, svcKey)
	}
	return func() { a.reattach(se, old, seg) }, nil
}

// reattach undoes detach. The entry se may have been re-created in a.svcs by
// a failed attempt that changed nothing; failed attempts never modify state,
// so the original entry is restored as it was.
func (a *Allocator) reattach(se *svcEntry, ip netip.Addr, seg *segment) {
	if cur := a.svcs[se.svc.Key]; cur != nil && cur != se {
		se = cur
	}
	a.svcs[se.svc.Key] = se
	se.ips = append(se.ips, ip)
	slices.SortFunc(se.ips, netip.Addr.Compare)
	e := a.ips[ip]
	if e == nil {
		e = &ipEntry{seg: seg}
		e.holders = e.one[:0]
		a.ips[ip] = e
		if seg != nil {
			slot, _ := seg.pool.space[fi(FamilyOf(ip))].slot(ip)
			seg.used++
			seg.pool.used[fi(FamilyOf(ip))].add(slot)
		}
	}
	i, _ := slices.BinarySearchFunc(e.holders, se.svc.Key, func(h *svcEntry, k string) int { return strings.Compare(h.svc.Key, k) })
	e.holders = slices.Insert(e.holders, i, se)
	a.share(&se.svc, ip)
}
