package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
)

var everything = labels.Everything()

// agentReady is the file an agent process creates once it serves.
func agentReady(runDir string) string { return filepath.Join(runDir, "agent.ready") }

func (l *Lab) agentConfig(log string) AgentConfig {
	nodes := map[string]string{}
	for _, n := range l.Nodes {
		nodes[n.Name] = n.NS
	}
	lg, _ := newFileLogger(log)
	return AgentConfig{Nodes: nodes, REST: l.REST, CtlNS: l.CtlNS, APIServer: APIAddr + ":" + apiPort, Log: lg}
}

// startAgent starts the kube-proxy stand-in, the HTTP responders and the API
// proxy for the root namespace, in this process or (Opts.Agent) in a separate
// one that becomes the lab's owner.
func (l *Lab) startAgent() error {
	ln, err := freeListener()
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	l.Kubeconfig = filepath.Join(l.RunDir, "kubeconfig")
	if err := writeKubeconfig(l.Kubeconfig, "https://127.0.0.1:"+strconv.Itoa(port), "localhost", l.caFile, l.token); err != nil {
		ln.Close()
		return err
	}
	l.mu.Lock()
	l.state.Kubeconfig = l.Kubeconfig
	err = l.state.save()
	l.mu.Unlock()
	if err != nil {
		ln.Close()
		return err
	}
	if len(l.Agent) > 0 {
		return l.startAgentProcess(ln)
	}
	cfg := l.agentConfig(filepath.Join(l.RunDir, "agent.log"))
	cfg.Proxy = ln
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	ready := make(chan struct{})
	errc := make(chan error, 1)
	l.agentW.Add(1)
	go func() {
		defer l.agentW.Done()
		errc <- RunAgent(ctx, cfg, func() { close(ready) })
	}()
	select {
	case <-ready:
		return nil
	case err := <-errc:
		return fmt.Errorf("agent: %w", err)
	case <-time.After(60 * time.Second):
		return fmt.Errorf("agent not ready after 60s (see %s)", filepath.Join(l.RunDir, "agent.log"))
	}
}

// ServeAgent is the body of a separate agent process: it serves the lab
// recorded in the state file called name, with the API proxy on the
// listener passed as file descriptor 3, until ctx ends.
func ServeAgent(ctx context.Context, name string) error {
	s, err := LoadState(name)
	if err != nil {
		return err
	}
	l := &Lab{CtlNS: s.CtlNS, APIServer: s.APIServer, token: s.Token, caFile: s.CAFile, procs: map[string]*Proc{}}
	l.Opts.Name, l.Opts.RunDir, l.state = s.Name, s.RunDir, s
	for i, name := range s.Nodes {
		l.Nodes = append(l.Nodes, &Node{Name: name, NS: s.Name + "-" + name, Index: i + 1})
	}
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		return err
	}
	l.REST = restConfig(s.APIServer, s.Token, ca, s.CtlNS)
	ln, err := net.FileListener(os.NewFile(3, "proxy"))
	if err != nil {
		return fmt.Errorf("API proxy listener (fd 3): %w", err)
	}
	cfg := l.agentConfig(filepath.Join(s.RunDir, "agent.log"))
	cfg.Proxy = ln
	return RunAgent(ctx, cfg, func() { _ = os.WriteFile(agentReady(s.RunDir), nil, 0o644) })
}

func (l *Lab) startAgentProcess(ln *net.TCPListener) error {
	f, err := ln.File()
	ln.Close()
	if err != nil {
		return err
	}
	defer f.Close()
	p := &Proc{Name: "agent", Log: filepath.Join(l.RunDir, "agent-process.log"), args: append(slices.Clone(l.Agent), "--name", l.Name)}
	p.extra = []*os.File{f}
	if err := l.launch(p); err != nil {
		return err
	}
	l.mu.Lock()
	l.procs[p.Name] = p
	l.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if err := p.running(); err != nil {
			return err
		}
		if _, err := os.Stat(agentReady(l.RunDir)); err == nil {
			// The agent outlives this process: it owns the lab from now on.
			l.mu.Lock()
			l.state.Owner = p.state()
			err := l.state.save()
			l.mu.Unlock()
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("agent not ready after 60s (see %s)", p.Log)
}

func (l *Lab) startController() error {
	// One controller process, as a test run: no leader election (with it, a
	// 30 s API server outage costs the Lease and the process exits, and the
	// lab has no Deployment to restart it).
	args := []string{"--kubeconfig=" + l.ControllerKubeconfig, "--leader-elect=false"}
	if l.ControllerArgs != nil {
		args = l.ControllerArgs(l.ControllerKubeconfig)
	}
	p, err := l.start("controller", l.CtlNS, []string{"KUBECONFIG=" + l.ControllerKubeconfig},
		append([]string{filepath.Join(l.BinDir, "portico-controller")}, args...)...)
	if err != nil {
		return err
	}
	return l.waitControllerReady(p, args)
}

// waitControllerReady polls the controller's /readyz (in the control
// namespace, on --health-probe-bind-address) until it answers 200, and fails
// at once if the process exits (bad flags, no API server). With the probes
// turned off it only checks that the process runs.
func (l *Lab) waitControllerReady(p *Proc, args []string) error {
	addr := ":8081" // the controller's default
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--health-probe-bind-address="); ok {
			addr = v
		} else if a == "--health-probe-bind-address" && i+1 < len(args) {
			addr = args[i+1]
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if addr == "0" || err != nil {
		return p.running()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/readyz"
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: DialIn(l.CtlNS), DisableKeepAlives: true}}
	var last error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := p.running(); err != nil {
			return err
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
	}
	return fmt.Errorf("portico-controller not ready after 60s: %v (see %s)", last, p.Log)
}

func (l *Lab) speakerArgs(n *Node) []string {
	args := []string{"--node-name=" + n.Name, "--kubeconfig=" + l.SpeakerKubeconfig}
	if l.SpeakerArgs != nil {
		args = l.SpeakerArgs(n, l.SpeakerKubeconfig)
	}
	return append([]string{filepath.Join(l.BinDir, "portico-speaker")}, args...)
}

func (l *Lab) startSpeakers() error {
	for _, n := range l.Nodes {
		if _, err := l.start("speaker-"+n.Name, n.NS,
			[]string{"NODE_NAME=" + n.Name, "KUBECONFIG=" + l.SpeakerKubeconfig}, l.speakerArgs(n)...); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	names := make([]string, len(l.Nodes))
	for i, n := range l.Nodes {
		names[i] = n.Name
	}
	return l.WaitMembers(ctx, names...)
}

// KillSpeaker kills node n's speaker with SIGKILL, as a crash would.
func (l *Lab) KillSpeaker(n *Node) {
	l.Proc("speaker-" + n.Name).kill()
}

// StopSpeaker stops node n's speaker with SIGTERM (a graceful shutdown).
func (l *Lab) StopSpeaker(n *Node) {
	l.Proc("speaker-" + n.Name).stop(5 * time.Second)
}

// StartSpeaker starts node n's speaker again after KillSpeaker or StopSpeaker.
func (l *Lab) StartSpeaker(n *Node) error {
	p := l.Proc("speaker-" + n.Name)
	if done, _ := p.Exited(); !done {
		return fmt.Errorf("speaker on %s is running (PID %d)", n.Name, p.PID)
	}
	return l.launch(p)
}

// WaitMembers waits until each named node's speaker reports, in its
// SpeakerStatus, exactly the named nodes as memberlist members; it fails at
// once when one of their speakers has exited.
func (l *Lab) WaitMembers(ctx context.Context, nodes ...string) error {
	want := slices.Sorted(slices.Values(nodes))
	var last string
	for {
		for _, name := range nodes {
			if err := l.Proc("speaker-" + name).running(); err != nil {
				return err
			}
		}
		var list porticov1.SpeakerStatusList
		if err := l.Client.List(ctx, &list); err != nil {
			last = err.Error()
		} else {
			got := map[string][]string{}
			for _, st := range list.Items {
				got[st.Name] = slices.Sorted(slices.Values(st.Status.Members))
			}
			var bad []string
			for _, name := range nodes {
				if !slices.Equal(memberNames(got[name]), want) {
					bad = append(bad, fmt.Sprintf("%s sees %v", name, got[name]))
				}
			}
			if len(bad) == 0 {
				return nil
			}
			last = strings.Join(bad, "; ")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("speakers did not converge on members %v: %s (speaker logs in %s)", want, last, l.RunDir)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// memberNames strips anything after the node name ("node1 203.0.113.11:7947").
func memberNames(ms []string) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, strings.Fields(m + " ")[0])
	}
	slices.Sort(out)
	return out
}
