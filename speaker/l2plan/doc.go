// Package l2plan owns the speaker's layer 2 decisions as pure functions: from
// the objects in the speaker's informer cache (Services, EndpointSlices, Nodes,
// IPAddressPools, L2Advertisements) and its memberlist view (which speakers are
// alive and ready, and the interfaces with carrier each one published), it
// computes the election inputs for every L2 Service IP, the election results,
// the set of (IP, interfaces) this node must announce, and the status entries
// this node is responsible for writing.
//
// It also owns the memberlist metadata format the speakers exchange (Meta) and
// the rule for which local links a speaker publishes (LocalInterfaces).
//
// Nothing here talks to the network or the API server, and every output is
// sorted, so each speaker computes the same answer from the same inputs.
package l2plan
