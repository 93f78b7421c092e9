package bgp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portico-lb/portico/internal/netnstest"
)

// The lab: two namespaces joined by a veth pair (eth0 on both sides). The
// router namespace runs FRR; the announcer runs in the speaker namespace.
//
// gobgp opens its sockets (the BGP connections, BFD's UDP sockets) from its
// own goroutines, which run on any OS thread of the process; a thread
// switched into a namespace (netnstest.NS.Do) does not carry them along.
// So the announcer runs in a process of its own, wholly inside the speaker
// namespace: the test binary itself, started again with
// "ip netns exec SPEAKER" to run one phase of the same test. The parent
// process builds and removes the namespaces and FRR; the speaker process
// reads the lab from the environment, runs the phase's body (which may
// query FRR through its vty sockets) and ends the test.

var (
	routerV4  = netip.MustParseAddr("198.51.100.1")
	routerV4b = netip.MustParseAddr("198.51.100.11") // a second router address, for a second IPv4 session
	routerV4c = netip.MustParseAddr("198.51.100.12") // a third one, where nothing listens
	routerV6  = netip.MustParseAddr("2001:db8::1")
	routerV6b = netip.MustParseAddr("2001:db8::11")
	nodeV4    = netip.MustParseAddr("198.51.100.2")
	nodeV4b   = netip.MustParseAddr("198.51.100.3")
	nodeV6    = netip.MustParseAddr("2001:db8::2")
	nodeV6b   = netip.MustParseAddr("2001:db8::3")
)

const (
	routerASN = 64500
	nodeASN   = 64512
	labEnv    = "PORTICO_BGP_LAB" // the lab, as JSON, in a speaker process
)

type lab struct {
	Speaker string // speaker namespace
	Router  string // router namespace
	FRR     *frr
	Phase   string // in a speaker process: the phase to run

	child bool
}

// newLab builds the lab for t in the parent process; in a speaker process
// it returns the lab the parent described.
func newLab(t *testing.T, conf frrConfig) *lab {
	t.Helper()
	if s := os.Getenv(labEnv); s != "" {
		l := &lab{child: true}
		if err := json.Unmarshal([]byte(s), l); err != nil {
			t.Fatalf("%s: %v", labEnv, err)
		}
		return l
	}
	netnstest.Require(t, "/usr/lib/frr/bgpd", "/usr/lib/frr/bfdd", "/usr/lib/frr/zebra", "vtysh", "ss")
	speaker, router := netnstest.New(t, "bgpspk"), netnstest.New(t, "bgprtr")
	netnstest.Veth(t, speaker, "eth0", router, "eth0")
	addrs := map[*netnstest.NS][]netip.Addr{
		speaker: {nodeV4, nodeV4b, nodeV6},
		router:  {routerV4, routerV4b, routerV4c, routerV6},
	}
	// A second IPv6 address only where a neighbour needs it: FRR's bfdd
	// sends from the newest one, and gobgp knows BFD peers by source.
	if slices.ContainsFunc(conf.Neighbors, func(n frrNeighbor) bool { return n.Addr == nodeV6b.String() }) {
		addrs[speaker] = append(addrs[speaker], nodeV6b)
		addrs[router] = append(addrs[router], routerV6b)
	}
	for ns, addrs := range addrs {
		// Keep IPv6 addresses across link down and up (tests cut links).
		ns.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.keep_addr_on_down=1")
		for _, a := range addrs {
			if a.Is4() {
				ns.Run(t, "ip", "addr", "add", a.String()+"/24", "dev", "eth0")
			} else {
				ns.Run(t, "ip", "addr", "add", a.String()+"/64", "dev", "eth0", "nodad")
			}
		}
		ns.Run(t, "ip", "link", "set", "eth0", "up")
	}
	if conf.ASN == 0 {
		conf.ASN = routerASN
	}
	if conf.RouterID == "" {
		conf.RouterID = routerV4.String()
	}
	return &lab{Speaker: speaker.Name, Router: router.Name, FRR: startFRR(t, router, conf)}
}

// speakerProc is a speaker process.
type speakerProc struct {
	phase string
	cmd   *exec.Cmd
	out   *syncBuffer
	done  chan struct{}
	err   error
}

// speaker runs body in a speaker process and waits for it (in the parent);
// in a speaker process it runs body if phase is the one asked for, then
// ends the test.
func (l *lab) speaker(t *testing.T, phase string, body func(t *testing.T)) {
	t.Helper()
	if l.child {
		if l.Phase == phase {
			body(t)
			t.SkipNow() // the rest of the test belongs to the parent ("SKIP" in the speaker's output)
		}
		return
	}
	p := l.start(t, phase)
	p.wait(t)
}

// background starts a speaker process running body and returns at once
// (in the parent); in a speaker process it runs body if phase is the one
// asked for, then ends the test, and returns nil.
func (l *lab) background(t *testing.T, phase string, body func(t *testing.T)) *speakerProc {
	t.Helper()
	if l.child {
		if l.Phase == phase {
			body(t)
			t.SkipNow()
		}
		return nil
	}
	return l.start(t, phase)
}

// start starts a speaker process for phase, without waiting.
func (l *lab) start(t *testing.T, phase string) *speakerProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := *l
	c.Phase = phase
	env, _ := json.Marshal(&c)
	var run []string
	for _, part := range strings.Split(t.Name(), "/") {
		run = append(run, "^"+regexp.QuoteMeta(part)+"$")
	}
	args := []string{"netns", "exec", l.Speaker, exe, "-test.run", strings.Join(run, "/"), "-test.v", "-test.count=1"}
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout", time.Until(d).Round(time.Second).String())
	}
	p := &speakerProc{phase: phase, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", args...)
	p.cmd.Env = append(os.Environ(), labEnv+"="+string(env))
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the speaker process to end and fails t if it failed.
func (p *speakerProc) wait(t *testing.T) {
	t.Helper()
	<-p.done
	if p.err != nil {
		t.Errorf("speaker process (phase %q) failed: %v; its output:\n%s", p.phase, p.err, p.out)
	} else if testing.Verbose() {
		t.Logf("speaker process (phase %q) output:\n%s", p.phase, p.out)
	}
}

// kill ends the speaker process at once, as a crash would: no Close, the
// kernel closes its connections.
func (p *speakerProc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	if testing.Verbose() {
		t.Logf("speaker process (phase %q, killed) output:\n%s", p.phase, p.out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// inRouter runs a command in the router namespace (from either process).
func (l *lab) inRouter(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", l.Router}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v: %s", l.Router, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newAnnouncer starts an announcer (in a speaker process) whose log goes to
// t.Log and to the returned buffer, closed when t ends.
func newAnnouncer(t *testing.T, cfg Config) (*Announcer, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(teeWriter{t, buf}, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a, buf
}

type teeWriter struct {
	t   *testing.T
	buf *syncBuffer
}

func (w teeWriter) Write(b []byte) (int, error) {
	w.buf.Write(b)
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// waitFor polls cond until it holds, failing t after d. Deadlines are
// generous: tests wait for conditions, they do not time them.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// session returns the announcer's status of peer name.
func session(t testing.TB, a *Announcer, name string) SessionStatus {
	t.Helper()
	for _, s := range a.Sessions() {
		if s.Peer == name {
			return s
		}
	}
	t.Fatalf("no session %q in %+v", name, a.Sessions())
	return SessionStatus{}
}

// waitState waits until peer name's session is in state.
func waitState(t testing.TB, a *Announcer, name, state string, d time.Duration) SessionStatus {
	t.Helper()
	var s SessionStatus
	waitFor(t, d, fmt.Sprintf("session %q to be %s", name, state), func() bool {
		s = session(t, a, name)
		return s.State == state
	})
	return s
}

func setDesired(t testing.TB, a *Announcer, peers []Peer, paths []Path) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.SetDesired(ctx, peers, paths); err != nil {
		t.Fatalf("SetDesired: %v", err)
	}
}
