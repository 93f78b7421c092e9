// Package netnstest creates throw-away network namespaces for tests that need
// real sockets, links and neighbours. Everything it creates is removed by
// t.Cleanup. Only documentation-range addresses belong in these namespaces.
package netnstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// Require skips the test unless it runs as root and every named tool is on
// PATH. When the environment variable CI is "true", it fails instead, so a CI
// run cannot silently skip real-network tests.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces)")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "needs " + strings.Join(missing, ", ") + " (Debian: iproute2, iputils-arping, ndisc6)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

var seq atomic.Int64

// NS is a network namespace made for one test.
type NS struct {
	Name   string
	handle netns.NsHandle
}

// New creates a namespace named after prefix, the process ID and a counter,
// with lo up and IPv6 duplicate address detection off (so addresses are usable
// at once). It is deleted, after its processes are killed, when t ends.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name, handle: -1}
	t.Cleanup(func() { ns.destroy(t) })
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("opening namespace %s: %v", name, err)
	}
	ns.handle = h
	ns.Run(t, "ip", "link", "set", "lo", "up")
	ns.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	return ns
}

func (ns *NS) destroy(t testing.TB) {
	out, _ := exec.Command("ip", "netns", "pids", ns.Name).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		// The test process itself shows up when its main thread was
		// switched into the namespace by Do; it is never killed.
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	for _, pid := range pids {
		for i := 0; i < 20 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if ns.handle >= 0 {
		ns.handle.Close()
	}
	if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v: %s", ns.Name, err, out)
	}
}

// Exec runs a command inside the namespace and returns its combined output.
func (ns *NS) Exec(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...).CombinedOutput()
	return string(out), err
}

// Run is Exec that fails the test on error.
func (ns *NS) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := ns.Exec(args...)
	if err != nil {
		t.Fatalf("in %s: %s: %v: %s", ns.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// Do runs f on an OS thread switched into the namespace. Sockets that f opens
// stay in the namespace afterwards, whichever goroutine uses them. The thread
// is thrown away when f returns, so the switch never leaks to other
// goroutines.
func (ns *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the goroutine exits locked and the runtime
		// terminates the thread.
		if err := netns.Set(ns.handle); err != nil {
			errc <- fmt.Errorf("entering namespace %s: %w", ns.Name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// Veth connects two namespaces with a veth pair named nameA in a and nameB in
// b, both left down.
func Veth(t testing.TB, a *NS, nameA string, b *NS, nameB string) {
	t.Helper()
	if a == b {
		t.Fatal(errors.New("netnstest: veth within one namespace"))
	}
	out, err := exec.Command("ip", "link", "add", nameA, "netns", a.Name, "type", "veth",
		"peer", "name", nameB, "netns", b.Name).CombinedOutput()
	if err != nil {
		t.Fatalf("creating veth %s/%s <-> %s/%s: %v: %s", a.Name, nameA, b.Name, nameB, err, out)
	}
}
