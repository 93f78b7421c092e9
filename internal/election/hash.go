package election

import "net/netip"

// The winner for an IP is the candidate with the highest Score(node, IP):
// rendezvous hashing. The score combines two 64-bit FNV-1a hashes (of the
// node name and of the 16-byte form of the IP) and passes them through the
// splitmix64 finalizer, which spreads every input bit over the whole output
// so that the ranking of nodes for one IP is unrelated to the ranking for the
// next. Hashing each node name once lets a batch of IPs be elected with one
// multiply-xor chain per (node, IP) pair.

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// Score is the rendezvous weight of node for ip; among the candidates for
// ip the node with the highest score announces it. IPv4-mapped IPv6
// addresses score like their IPv4 form and zones are ignored.
func Score(node string, ip netip.Addr) uint64 {
	return mix(nodeHash(node) ^ addrHash(ip.Unmap().WithZone("")))
}

func nodeHash(name string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= fnvPrime64
	}
	return h
}

func addrHash(ip netip.Addr) uint64 {
	b := ip.As16()
	h := uint64(fnvOffset64)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return h
}

// mix is the splitmix64 finalizer.
func mix(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}
