package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StateDir holds one state file per running lab.
const StateDir = "/run/portico-lab"

// Prefix starts the name of every namespace any lab creates; CleanLeftovers
// removes namespaces with it that no live lab claims.
const Prefix = "ptc-"

// blackholes are the root namespace routes earlier versions of the lab added
// for the lab ranges; CleanLeftovers removes them. The lab adds none now.
var blackholes = []string{"198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"}

// ProcState identifies a process the lab started: its PID and its start time
// (field 22 of /proc/PID/stat), so that a reused PID is never signalled.
type ProcState struct {
	Name  string `json:"name"`
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// State is what a lab records about itself, enough for another process to
// tear it down (`lab down`) or to serve it (the agent of `lab up`).
type State struct {
	Name       string      `json:"name"`
	Owner      ProcState   `json:"owner"`
	RunDir     string      `json:"runDir"`
	Namespaces []string    `json:"namespaces"`
	Procs      []ProcState `json:"procs"`
	// For the agent: how to reach the API server and which nodes to serve.
	CtlNS      string   `json:"ctlNS"`
	APIServer  string   `json:"apiServer"`
	Token      string   `json:"token"`
	CAFile     string   `json:"caFile"`
	Nodes      []string `json:"nodes"`
	Kubeconfig string   `json:"kubeconfig"`
}

func statePath(name string) string { return filepath.Join(StateDir, name+".json") }

func (s *State) save() error {
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(s.Name) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, statePath(s.Name))
}

// LoadState reads the state file of the lab called name.
func LoadState(name string) (*State, error) {
	data, err := os.ReadFile(statePath(name))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("state file %s: %w", statePath(name), err)
	}
	return &s, nil
}

func allStates() []*State {
	files, _ := filepath.Glob(filepath.Join(StateDir, "*.json"))
	var out []*State
	for _, f := range files {
		if s, err := LoadState(strings.TrimSuffix(filepath.Base(f), ".json")); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// procStart returns a process's start time, 0 if it does not exist.
func procStart(pid int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: fields count from after ')'.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

func selfState(name string) ProcState {
	return ProcState{Name: name, PID: os.Getpid(), Start: procStart(os.Getpid())}
}

// alive reports whether p still names the process that was recorded.
func (p ProcState) alive() bool {
	return p.PID > 0 && p.Start != 0 && procStart(p.PID) == p.Start
}

// signal sends sig to p if it is still the recorded process.
func (p ProcState) signal(sig syscall.Signal) {
	if p.alive() {
		_ = syscall.Kill(p.PID, sig)
	}
}

// stopPID sends TERM, waits up to grace for the process to go, then KILLs it.
func stopPID(p ProcState, grace time.Duration) {
	p.signal(syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for p.alive() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	p.signal(syscall.SIGKILL)
	for i := 0; i < 100 && p.alive() && !zombie(p.PID); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

func zombie(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] == "Z"
}

// stopAll stops processes in parallel.
func stopAll(ps []ProcState, grace time.Duration) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { stopPID(p, grace) })
	}
	wg.Wait()
}

// killNamespace stops every process in namespace ns by PID, then deletes it.
func killNamespace(ns string) error {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	var ps []ProcState
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			ps = append(ps, ProcState{PID: pid, Start: procStart(pid)})
		}
	}
	stopAll(ps, 2*time.Second)
	if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %v: %s", ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Teardown stops everything a state file records and removes its namespaces,
// its state file, and (when no other lab remains) blackhole routes an older
// version of the lab left in the root namespace. The run folder with the logs is kept, etcd's data aside.
func Teardown(s *State) error {
	var errs []error
	// The API server outlives its clients, so that they shut down cleanly.
	var clients, control []ProcState
	for _, p := range s.Procs {
		if p.Name == "kube-apiserver" || p.Name == "etcd" {
			control = append(control, p)
		} else {
			clients = append(clients, p)
		}
	}
	if s.Owner.PID != os.Getpid() {
		clients = append(clients, s.Owner)
	}
	stopAll(clients, 3*time.Second)
	stopAll(control, 3*time.Second)
	for _, ns := range slices.Backward(s.Namespaces) {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
			continue
		}
		if err := killNamespace(ns); err != nil {
			errs = append(errs, err)
		}
	}
	if s.RunDir != "" {
		os.RemoveAll(filepath.Join(s.RunDir, "etcd-data"))
	}
	if err := os.Remove(statePath(s.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if len(allStates()) == 0 {
		removeBlackholes()
	}
	return errors.Join(errs...)
}

// CleanLeftovers tears down labs whose owning process is gone and deletes
// namespaces named Prefix* that no live lab claims. It returns what it removed.
func CleanLeftovers() ([]string, error) {
	var removed []string
	var errs []error
	claimed := map[string]bool{}
	for _, s := range allStates() {
		if s.Owner.alive() {
			for _, ns := range s.Namespaces {
				claimed[ns] = true
			}
			continue
		}
		removed = append(removed, "lab "+s.Name)
		if err := Teardown(s); err != nil {
			errs = append(errs, err)
		}
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return removed, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], Prefix) || claimed[f[0]] {
			continue
		}
		removed = append(removed, "namespace "+f[0])
		if err := killNamespace(f[0]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(allStates()) == 0 {
		removeBlackholes()
	}
	return removed, errors.Join(errs...)
}

func removeBlackholes() {
	for _, p := range blackholes {
		fam := "-4"
		if strings.Contains(p, ":") {
			fam = "-6"
		}
		out, _ := exec.Command("ip", fam, "route", "show", "exact", p).Output()
		if strings.HasPrefix(strings.TrimSpace(string(out)), "blackhole") {
			_ = exec.Command("ip", fam, "route", "del", "blackhole", p).Run()
		}
	}
}
