package bgp

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Session errors in words, for SessionStatus.LastError. None of them ever
// carries a password: they are built from codes and gobgp's dial errors only.

// notificationWords names a NOTIFICATION's error (RFC 4271 4.5, RFC 4486
// Cease subcodes, RFC 8538 hard reset, RFC 9384 BFD down).
func notificationWords(code, subcode int) string {
	sub := func(names map[int]string, general string) string {
		if s, ok := names[subcode]; ok {
			return s
		}
		if subcode == 0 {
			return general
		}
		return fmt.Sprintf("%s (subcode %d)", general, subcode)
	}
	switch code {
	case 1:
		return sub(map[int]string{1: "connection not synchronized", 2: "bad message length", 3: "bad message type"},
			"message header error")
	case 2:
		return sub(map[int]string{1: "unsupported BGP version", 2: "bad peer AS", 3: "bad BGP identifier",
			4: "unsupported optional parameter", 6: "unacceptable hold time", 7: "unsupported capability",
			11: "role mismatch"}, "OPEN message error")
	case 3:
		return sub(map[int]string{1: "malformed attribute list", 2: "unrecognized well-known attribute",
			3: "missing well-known attribute", 4: "attribute flags error", 5: "attribute length error",
			6: "invalid ORIGIN attribute", 8: "invalid NEXT_HOP attribute", 9: "optional attribute error",
			10: "invalid network field", 11: "malformed AS_PATH"}, "UPDATE message error")
	case 4:
		return "hold timer expired"
	case 5:
		return "finite state machine error"
	case 6:
		return sub(map[int]string{1: "maximum number of prefixes reached", 2: "administrative shutdown",
			3: "peer de-configured", 4: "administrative reset", 5: "connection rejected",
			6: "other configuration change", 7: "connection collision resolution", 8: "out of resources",
			9: "hard reset", 10: "BFD down"}, "cease")
	case 7:
		return "ROUTE-REFRESH message error"
	}
	return fmt.Sprintf("error code %d, subcode %d", code, subcode)
}

// receivedWords is the LastError for a NOTIFICATION the router sent.
func receivedWords(code, subcode int, c *peerConf) string {
	s := "peer sent NOTIFICATION: " + notificationWords(code, subcode)
	switch {
	case code == 2 && subcode == 2:
		s += fmt.Sprintf(" (the router does not expect AS %d from this node: check myASN and the router's neighbour configuration)", c.myASN)
	case code == 2 && subcode == 3:
		s += " (check the router ID)"
	case code == 6 && (subcode == 3 || subcode == 5):
		s += " (is this node configured as a neighbour on the router?)"
	}
	return s
}

// sentWords is the LastError for a NOTIFICATION gobgp sent.
func sentWords(code, subcode int, c *peerConf) string {
	s := "sent NOTIFICATION: " + notificationWords(code, subcode)
	if code == 2 && subcode == 2 {
		s += fmt.Sprintf(" (the router's OPEN does not carry AS %d: check peerASN)", c.peerASN)
	}
	return s
}

// dialWords is the LastError for a failed TCP connect to the router.
func dialWords(err string, c *peerConf) string {
	dst := netip.AddrPortFrom(c.addr, c.port).String()
	switch {
	case strings.Contains(err, "connection refused"):
		return "connection refused: nothing accepts BGP connections on " + dst + " (is BGP running there, with this node as a neighbour?)"
	case strings.Contains(err, "i/o timeout") || strings.Contains(err, "timed out"):
		if c.password != "" {
			return "no answer to OPEN: check the password (connecting to " + dst + " timed out; a router whose TCP MD5 password differs drops the connection silently)"
		}
		return "no answer to OPEN: check the password and that " + dst + " is reachable (connecting timed out; a router that expects a TCP MD5 password drops connections without one silently)"
	case strings.Contains(err, "no route to host"):
		return "cannot reach " + dst + ": no route to host"
	case strings.Contains(err, "network is unreachable"):
		return "cannot reach " + dst + ": network is unreachable"
	case strings.Contains(err, "cannot assign requested address"):
		return fmt.Sprintf("cannot dial from source address %s: it is not an address of this node", c.source)
	}
	return "cannot connect to " + dst + ": " + err
}

func holdWords(c *peerConf) string {
	return fmt.Sprintf("hold timer expired: nothing heard from the router for %ds", c.hold)
}

func bfdExpiredWords() string {
	return "BFD down: no BFD packet from the router within the detection time; session reset"
}

const bfdRemoteDownWords = "BFD down: the router's BFD session went down; session reset"

// outgoingWords is the LastError for a failed exchange on a connection gobgp
// dialled, from the reason gobgp logs ("notification-received code 2(open)
// subcode 2(bad peer as)", "read-failed", ...).
func outgoingWords(reason string, c *peerConf) string {
	if code, subcode, ok := parseCodes(reason); ok {
		if strings.HasPrefix(reason, "notification-received") {
			return receivedWords(code, subcode, c)
		}
		return sentWords(code, subcode, c)
	}
	switch {
	case strings.HasPrefix(reason, "read-failed"):
		return "the router closed the connection after our OPEN (is this node configured as a neighbour there?)"
	case strings.HasPrefix(reason, "write-failed"):
		return "the connection to the router broke while sending"
	case strings.HasPrefix(reason, "hold-timer-expired"):
		return holdWords(c)
	}
	return "session failed: " + reason
}

// parseCodes reads "code N(...) subcode M(...)" from a gobgp reason string.
func parseCodes(s string) (code, subcode int, ok bool) {
	num := func(key string) (int, bool) {
		i := strings.Index(s, key)
		if i < 0 {
			return 0, false
		}
		rest := s[i+len(key):]
		j := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if j < 0 {
			j = len(rest)
		}
		n, err := strconv.Atoi(rest[:j])
		return n, err == nil
	}
	code, ok1 := num("code ")
	subcode, ok2 := num("subcode ")
	return code, subcode, ok1 && ok2
}
