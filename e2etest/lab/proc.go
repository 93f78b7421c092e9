package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Proc is a process the lab started, inside a namespace (through
// `ip netns exec`, which execs the command, so the PID is the program's) or in
// the root namespace.
type Proc struct {
	Name string
	NS   string
	Log  string
	PID  int
	args []string
	env  []string
	// extra are files passed to the child as descriptors 3, 4, ...
	extra []*os.File
	cmd   *exec.Cmd
	done  chan struct{}
	err   error
}

// Exited reports whether the process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Done is closed when the process ends.
func (p *Proc) Done() <-chan struct{} { return p.done }

func (p *Proc) state() ProcState { return ProcState{Name: p.Name, PID: p.PID, Start: procStart(p.PID)} }

// tail returns the last lines of the process's log, for error messages.
func (p *Proc) tail(n int) string {
	data, _ := os.ReadFile(p.Log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// start runs args inside namespace ns ("" for the root namespace) with its
// output appended to RunDir/<name>.log, and records it in the state file.
func (l *Lab) start(name, ns string, env []string, args ...string) (*Proc, error) {
	p := &Proc{Name: name, NS: ns, Log: filepath.Join(l.RunDir, name+".log"), args: args, env: env}
	if err := l.launch(p); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.procs[name] = p
	l.mu.Unlock()
	return p, nil
}

// launch starts (or restarts) p.
func (l *Lab) launch(p *Proc) error {
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "=== %s lab: starting %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.args, " "))
	argv := p.args
	if p.NS != "" {
		argv = append([]string{"ip", "netns", "exec", p.NS}, p.args...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), p.env...)
	cmd.ExtraFiles = p.extra
	// Its own process group: a terminal's Ctrl-C reaches the lab, which then
	// stops everything in order, instead of every child at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	p.cmd, p.PID, p.done, p.err = cmd, cmd.Process.Pid, make(chan struct{}), nil
	go func(done chan struct{}) {
		p.err = cmd.Wait()
		close(done)
	}(p.done)
	return l.recordProc(p)
}

func (l *Lab) recordProc(p *Proc) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state.Procs = slices.DeleteFunc(l.state.Procs, func(s ProcState) bool { return s.Name == p.Name })
	l.state.Procs = append(l.state.Procs, p.state())
	return l.state.save()
}

// stop ends p: TERM, then KILL after grace.
func (p *Proc) stop(grace time.Duration) {
	if p == nil || p.cmd == nil {
		return
	}
	if done, _ := p.Exited(); done {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends p at once with SIGKILL, as a crash would.
func (p *Proc) kill() {
	if done, _ := p.Exited(); done {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// running fails when p has exited, naming its log.
func (p *Proc) running() error {
	if done, err := p.Exited(); done {
		return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", p.Name, err, p.Log, p.tail(15))
	}
	return nil
}
