package ipam_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/portico-lb/portico/internal/ipam"
)

// The controller's flow: pools in, state rebuilt from Service status, then
// new services allocated from the pools SelectPools picks.
func Example() {
	ranges, err := ipam.ParseRanges([]string{"192.0.2.0/28", "2001:db8::/64"})
	if err != nil {
		fmt.Println(err)
		return
	}
	a := ipam.New()
	if _, err := a.SetPools([]ipam.Pool{{Name: "prod", Ranges: ranges, AutoAssign: true, Created: time.Unix(0, 0)}}); err != nil {
		fmt.Println(err)
		return
	}
	// Rebuild: the IP already in a Service's status.
	old := ipam.Service{Key: "shop/web", SharingKey: "shop", Ports: []ipam.Port{{Protocol: "TCP", Port: 443}}}
	pool, err := a.Assign(old, netip.MustParseAddr("192.0.2.0"), "")
	fmt.Println(pool, err)

	// A new service: choose pools, then one IP per family.
	svc := ipam.Service{Key: "shop/dns", SharingKey: "shop", Ports: []ipam.Port{{Protocol: "UDP", Port: 53}}}
	pools, _ := a.SelectPools(svc, "")
	for _, fam := range []ipam.Family{ipam.IPv4, ipam.IPv6} {
		ip, from, err := a.AllocateAny(svc, pools, fam)
		fmt.Println(ip, from, err)
	}
	c, _ := a.Counts("prod")
	fmt.Println(c.IPv4.Assigned, c.IPv4.Available, c.IPv6.Total, c.IPv6.AvailableInt64())

	_, err = a.Assign(ipam.Service{Key: "shop/other", SharingKey: "other"}, netip.MustParseAddr("192.0.2.0"), "")
	fmt.Println(err)
	// Output:
	// prod <nil>
	// 192.0.2.0 prod <nil>
	// 2001:db8:: prod <nil>
	// 1 15 18446744073709551616 9223372036854775807
	// 192.0.2.0 is used by shop/dns and the sharing keys differ ("shop" vs "other")
}
