package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-lb/portico/internal/version"
)

// runMain makes the test binary behave as the command, so the tests run the
// real process (arguments, exit codes, kubectl's plugin lookup) without
// linking a second binary.
const runMain = "PORTICO_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMain) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestBinary runs the command as a process: by name, as kubectl-portico through
// kubectl's plugin mechanism, and with exit codes a script can test.
func TestBinary(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{"portico", "kubectl-portico"} {
		if err := os.Symlink(self, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	type tcase struct {
		name  string
		cmd   []string
		stdin string
		code  int
		want  string // in the combined output
	}
	pool := "apiVersion: portico.dev/v1alpha1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [%s]}\n"
	cases := []tcase{
		{"version", []string{"portico", "--version"}, "", 0, "portico " + version.Version + "\n"},
		{"check from stdin", []string{"portico", "check", "-"}, strings.Replace(pool, "%s", "192.0.2.0/24", 1), 0, "no errors"},
		{"check finds an error", []string{"portico", "check", "-"}, strings.Replace(pool, "%s", "192.0.2.5/24", 1), 1,
			"<stdin>: IPAddressPool/a: spec.addresses[0]: CIDR has host bits set"},
		{"usage error", []string{"kubectl-portico", "statuz"}, "", 2, `kubectl portico: unknown command "statuz"`},
	}
	if _, err := exec.LookPath("kubectl"); err == nil {
		cases = append(cases, tcase{"kubectl plugin", []string{"kubectl", "portico", "--version"}, "", 0, "portico " + version.Version + "\n"})
	} else {
		t.Log("kubectl not found: the kubectl plugin case is not run")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.cmd[0])
			if tc.cmd[0] == "kubectl" {
				path, _ = exec.LookPath("kubectl")
			}
			cmd := exec.Command(path, tc.cmd[1:]...)
			cmd.Env = append(os.Environ(), runMain+"=1", "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
			cmd.Stdin = strings.NewReader(tc.stdin)
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output %q has no %q", out, tc.want)
			}
		})
	}
}
