package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"
)

// HTTPGet asks http://ip/ from the client namespace over a new connection and
// returns the answer with surrounding space trimmed: the answering node's name.
func (l *Lab) HTTPGet(ctx context.Context, ip netip.Addr, timeout time.Duration) (string, error) {
	return httpGet(ctx, l.ClientNS, ip, timeout)
}

// ExtHTTPGet is HTTPGet from the external client behind the router.
func (l *Lab) ExtHTTPGet(ctx context.Context, ip netip.Addr, timeout time.Duration) (string, error) {
	return httpGet(ctx, l.ExtNS, ip, timeout)
}

func httpGet(ctx context.Context, ns string, ip netip.Addr, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{DialContext: DialIn(ns), DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	url := "http://" + net.JoinHostPort(ip.String(), "80") + "/"
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return "", err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return strings.TrimSpace(string(body)), nil
}

// ExtCurl runs curl for url in the external client's namespace, as a user
// behind the router would, and returns the body with surrounding space
// trimmed (for the lab's responders: the node's name). It fails on a
// timeout, a connection error or an HTTP error status, quoting curl.
func (l *Lab) ExtCurl(ctx context.Context, url string, timeout time.Duration) (string, error) {
	return Curl(ctx, l.ExtNS, timeout, "--globoff", url)
}

// URL is http://ip/ (brackets around an IPv6 address), for ExtCurl.
func URL(ip netip.Addr) string {
	return "http://" + net.JoinHostPort(ip.String(), "80") + "/"
}

// Probe is one HTTP request of WaitHTTP.
type Probe struct {
	Sent, At time.Time // when the request started and when its answer came
	Node     string
	Err      error
}

// WaitHTTP starts a request for http://ip/ from the client every interval,
// each on a new connection with its own timeout of at least 250 ms, so that
// requests stuck on a dead node do not slow the probing down. It returns the
// first answer that satisfies ok (nil: any answer); Probe.At is when that
// answer arrived.
func (l *Lab) WaitHTTP(ctx context.Context, ip netip.Addr, interval time.Duration, ok func(node string) bool) (Probe, error) {
	return waitHTTP(ctx, l.HTTPGet, ip, interval, ok)
}

// WaitExtHTTP is WaitHTTP from the external client behind the router.
func (l *Lab) WaitExtHTTP(ctx context.Context, ip netip.Addr, interval time.Duration, ok func(node string) bool) (Probe, error) {
	return waitHTTP(ctx, l.ExtHTTPGet, ip, interval, ok)
}

func waitHTTP(ctx context.Context, get func(context.Context, netip.Addr, time.Duration) (string, error),
	ip netip.Addr, interval time.Duration, ok func(node string) bool) (Probe, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan Probe, 64)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last Probe
	for {
		go func(sent time.Time) {
			node, err := get(ctx, ip, max(5*interval, 250*time.Millisecond))
			select {
			case results <- Probe{Sent: sent, At: time.Now(), Node: node, Err: err}:
			case <-ctx.Done():
			}
		}(time.Now())
	wait:
		for {
			select {
			case p := <-results:
				if p.Err == nil && (ok == nil || ok(p.Node)) {
					return p, nil
				}
				last = p
			case <-tick.C:
				break wait
			case <-ctx.Done():
				return last, fmt.Errorf("no suitable HTTP answer from %s: last answer %q, error %v", ip, last.Node, last.Err)
			}
		}
	}
}

var (
	arpingReply = regexp.MustCompile(`reply from \S+ \[([0-9A-Fa-f:]{17})\]`)
	ndiscReply  = regexp.MustCompile(`Target link-layer address: ([0-9A-Fa-f:]{17})`)
)

// ARPReplies broadcasts ARP requests for ip from the client (arping -b, so
// that every node that would answer does) and returns the distinct replying
// MACs, sorted; none when nobody answered.
func (l *Lab) ARPReplies(ip netip.Addr) ([]string, error) {
	return l.neighbourReplies(arpingReply, "arping", "-b", "-c", "2", "-w", "2", "-I", "eth0", ip.String())
}

// NDPReplies sends neighbour solicitations for ip from the client and returns
// the distinct answering MACs (ndisc6 -m waits for all answers).
func (l *Lab) NDPReplies(ip netip.Addr) ([]string, error) {
	return l.neighbourReplies(ndiscReply, "ndisc6", "-n", "-m", "-r", "2", "-w", "700", ip.String(), "eth0")
}

// Replies is ARPReplies or NDPReplies, by ip's family.
func (l *Lab) Replies(ip netip.Addr) ([]string, error) {
	if ip.Is6() {
		return l.NDPReplies(ip)
	}
	return l.ARPReplies(ip)
}

func (l *Lab) neighbourReplies(re *regexp.Regexp, args ...string) ([]string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", l.ClientNS}, args...)...).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return nil, fmt.Errorf("%s: %w", args[0], err)
	}
	var macs []string
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		mac := strings.ToLower(m[1])
		if !slices.Contains(macs, mac) {
			macs = append(macs, mac)
		}
	}
	slices.Sort(macs)
	if len(macs) == 0 && err != nil && ee.ExitCode() > 2 {
		return nil, fmt.Errorf("%s: %v: %s", args[0], err, out)
	}
	return macs, nil
}

// Announcer returns the single node answering ARP/NDP for ip, failing when
// none or more than one answers or the MAC is no node's.
func (l *Lab) Announcer(ip netip.Addr) (*Node, error) {
	macs, err := l.Replies(ip)
	if err != nil {
		return nil, err
	}
	if len(macs) != 1 {
		return nil, fmt.Errorf("%d MACs answered for %s: %v (want exactly one)", len(macs), ip, macs)
	}
	n := l.NodeByMAC(macs[0])
	if n == nil {
		return nil, fmt.Errorf("%s answered for %s: no node has that MAC", macs[0], ip)
	}
	return n, nil
}
