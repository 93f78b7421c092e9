package lab

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The lab runs one controller process without leader election (see
// startController). A test of leader election swaps it for replicas:
// StartControllerReplicas stops it and starts n processes with leader
// election on (the controller's default and its default timings: a 6 s
// Lease, so a killed leader is replaced within about 7 s), and
// StopControllerReplicas puts the single process back, so later tests see
// the lab as Up left it.

// replicaPort is the first port of replica i's metrics (health: +100), on
// 127.0.0.1 in the control namespace, away from the single controller's
// :8080 and :8081.
func replicaPort(i int) int { return 18080 + i }

// ControllerReplica is one of the controller processes StartControllerReplicas
// started.
type ControllerReplica struct {
	*Proc
	// Metrics and Health are host:port inside the control namespace.
	Metrics, Health string
}

// StartControllerReplicas stops the lab's single controller and starts n
// replicas ("controller-1" ... "controller-n") with leader election, each
// with its own metrics and health port, and waits until each answers
// /healthz and one of them leads.
func (l *Lab) StartControllerReplicas(ctx context.Context, n int) ([]*ControllerReplica, error) {
	if p := l.Proc("controller"); p != nil {
		p.stop(10 * time.Second)
	}
	var out []*ControllerReplica
	for i := 1; i <= n; i++ {
		r := &ControllerReplica{
			Metrics: "127.0.0.1:" + strconv.Itoa(replicaPort(i)),
			Health:  "127.0.0.1:" + strconv.Itoa(replicaPort(i)+100),
		}
		var err error
		r.Proc, err = l.start("controller-"+strconv.Itoa(i), l.CtlNS, []string{"KUBECONFIG=" + l.ControllerKubeconfig},
			filepath.Join(l.BinDir, "portico-controller"), "--kubeconfig="+l.ControllerKubeconfig,
			"--leader-elect=true", "--metrics-bind-address="+r.Metrics, "--health-probe-bind-address="+r.Health)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	for _, r := range out {
		if err := l.waitHealthy(ctx, r.Proc, r.Health); err != nil {
			return out, err
		}
	}
	_, err := l.WaitLeader(ctx, out)
	return out, err
}

// StopControllerReplicas stops the replicas (SIGTERM: a leader releases its
// Lease) and starts the lab's single controller again.
func (l *Lab) StopControllerReplicas(ctx context.Context, rs []*ControllerReplica) error {
	for _, r := range rs {
		r.stop(10 * time.Second)
	}
	return l.RestartController(ctx)
}

// RestartController starts the lab's single controller again after it was
// stopped or killed (killing it first if it runs), and waits until it
// answers /healthz.
func (l *Lab) RestartController(ctx context.Context) error {
	p := l.Proc("controller")
	if p == nil {
		return fmt.Errorf("the lab has no controller process")
	}
	p.kill()
	if err := l.launch(p); err != nil {
		return err
	}
	// The single controller's health address is the controller's default
	// (:8081) unless ControllerArgs chose another; then only check it runs.
	if l.ControllerArgs != nil {
		return p.running()
	}
	return l.waitHealthy(ctx, p, "127.0.0.1:8081")
}

// Kill ends the process at once with SIGKILL, as a crash would (nothing
// runs after it: a controller leader does not release its Lease).
func (p *Proc) Kill() { p.kill() }

// waitHealthy polls http://addr/healthz inside the control namespace until
// it answers 200, failing early when p exits.
func (l *Lab) waitHealthy(ctx context.Context, p *Proc, addr string) error {
	c := l.ctlHTTP()
	var last error
	for {
		if err := p.running(); err != nil {
			return err
		}
		last = get200(ctx, c, "http://"+addr+"/healthz")
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: no /healthz at %s: %v (log %s)", p.Name, addr, last, p.Log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (l *Lab) ctlHTTP() *http.Client {
	return &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: DialIn(l.CtlNS), DisableKeepAlives: true}}
}

func get200(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// leaderGauge is controller-runtime's metric saying whether a process holds
// the Lease it names.
var leaderGauge = regexp.MustCompile(`^leader_election_master_status\{[^}]*\} 1$`)

// Leads reports whether the replica says (on its metrics endpoint) that it
// holds the Lease; an exited or unreachable replica does not lead.
func (l *Lab) Leads(ctx context.Context, r *ControllerReplica) bool {
	if done, _ := r.Exited(); done {
		return false
	}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+r.Metrics+"/metrics", nil)
	if err != nil {
		return false
	}
	resp, err := l.ctlHTTP().Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if leaderGauge.MatchString(strings.TrimSpace(sc.Text())) {
			return true
		}
	}
	return false
}

// WaitLeader waits until exactly one running replica leads and returns it.
func (l *Lab) WaitLeader(ctx context.Context, rs []*ControllerReplica) (*ControllerReplica, error) {
	for {
		var leaders []*ControllerReplica
		for _, r := range rs {
			if l.Leads(ctx, r) {
				leaders = append(leaders, r)
			}
		}
		if len(leaders) == 1 {
			return leaders[0], nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("controller replicas: %d leaders, want 1 (logs in %s)", len(leaders), l.RunDir)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
