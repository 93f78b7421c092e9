package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-lb/portico/internal/manifest"
)

const goodPool = "apiVersion: portico.dev/v1alpha1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [192.0.2.0/24]}\n"

type result struct {
	code     int
	out, err string
}

func run(t *testing.T, stdin string, terminal bool, args ...string) result {
	t.Helper()
	var out, errOut strings.Builder
	code := Main(args, Streams{In: strings.NewReader(stdin), Out: &out, Err: &errOut, OutTerminal: terminal, ErrTerminal: terminal})
	return result{code, out.String(), errOut.String()}
}

// TestCommands runs whole command lines: exit code, and strings that must be
// in standard output and standard error.
func TestCommands(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "portico.yaml")
	cases := []struct {
		name    string
		args    []string
		stdin   string
		code    int
		outHas  []string
		errHas  []string
		outNone bool
	}{
		{name: "version", args: []string{"portico", "--version"}, outHas: []string{"portico dev\n"}},
		{name: "help names the commands", args: []string{"portico", "--help"}, outHas: []string{"check", "migrate", "status"}},
		{name: "kubectl plugin name", args: []string{"/usr/local/bin/kubectl-portico", "nope"}, code: ExitUsage,
			errHas: []string{`kubectl portico: unknown command "nope"`, "Run 'kubectl portico --help' for usage."}},
		{name: "unknown flag", args: []string{"portico", "check", "--bogus", "x"}, code: ExitUsage, errHas: []string{"unknown flag: --bogus"}},
		{name: "check without files", args: []string{"portico", "check"}, code: ExitUsage, errHas: []string{"check needs at least one file"}},
		{name: "check good stdin", args: []string{"portico", "check", "-"}, stdin: goodPool, errHas: []string{"1 Portico object checked in 1 file: no errors"}, outNone: true},
		{name: "check bad stdin", args: []string{"portico", "check", "-"}, stdin: goodPool + "---\nkind: [\n", code: ExitProblems,
			outHas: []string{"<stdin>: document 2 (line 6): malformed YAML"}, errHas: []string{"1 error"}},
		{name: "check missing file", args: []string{"portico", "check", filepath.Join(dir, "nope.yaml")}, code: ExitProblems, errHas: []string{"nope.yaml: no such file or folder"}},
		{name: "check json", args: []string{"portico", "check", "-o", "json", "-"}, stdin: "kind: X\n", code: ExitProblems,
			outHas: []string{`"checked": 0`, `"message": "not a Kubernetes object: apiVersion and kind are required`}},
		{name: "check a file and a folder", args: []string{"portico", "check", "../check/testdata/good.yaml", "../migrate/testdata/openelb"}, code: ExitProblems,
			errHas: []string{"18 Portico objects checked in 7 files: 10 errors"}, outHas: []string{"bgp.yaml: BgpConf/default: not a Portico object but network.kubesphere.io/v1alpha2 BgpConf: convert it with `portico migrate --from openelb`"}},
		{name: "migrate needs --from", args: []string{"portico", "migrate", "-"}, code: ExitUsage, errHas: []string{"--from is required"}},
		{name: "migrate unknown source", args: []string{"portico", "migrate", "--from", "calico", "-"}, code: ExitUsage, errHas: []string{`--from "calico": use one of metallb, openelb`}},
		{name: "migrate to stdout", args: []string{"portico", "migrate", "--from", "metallb", "../migrate/testdata/metallb/l2-simple.yaml"},
			outHas: []string{"# Converted from MetalLB by portico migrate dev", "kind: L2Advertisement"}, errHas: []string{"2 Portico objects written to standard output; 0 notes; the result passes portico check"}},
		{name: "migrate malformed writes nothing", args: []string{"portico", "migrate", "--from", "metallb", "-o", out, "../migrate/testdata/metallb/bad.yaml"}, code: ExitProblems,
			errHas: []string{"error: ../migrate/testdata/metallb/bad.yaml: document 3 (line 21): malformed YAML", "6 input errors: nothing written"}, outNone: true},
		{name: "migrate result failing check", args: []string{"portico", "migrate", "--from", "metallb", "../migrate/testdata/metallb/bgp-export.yaml"}, code: ExitProblems,
			outHas: []string{"kind: BGPPeer"}, errHas: []string{"check: ../migrate/testdata/metallb/bgp-export.yaml: BGPAdvertisement/public: spec.localPref", "Before applying, run:\n  kubectl create secret generic rack-a-tor-password"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.stdin, false, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.out, r.err)
			}
			for _, w := range tc.outHas {
				if !strings.Contains(r.out, w) {
					t.Errorf("stdout has no %q:\n%s", w, r.out)
				}
			}
			for _, w := range tc.errHas {
				if !strings.Contains(r.err, w) {
					t.Errorf("stderr has no %q:\n%s", w, r.err)
				}
			}
			if tc.outNone && r.out != "" {
				t.Errorf("stdout: %q", r.out)
			}
			if strings.Contains(r.out+r.err, "\x1b[") {
				t.Error("colour codes without a terminal")
			}
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s written from malformed input", out)
	}
}

func TestMigrateToFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "portico.yaml")
	r := run(t, "", false, "portico", "migrate", "--from", "openelb", "-o", out, "../migrate/testdata/openelb/layer2.yaml")
	if r.code != 0 || r.out != "" || !strings.Contains(r.err, "written to "+out) {
		t.Fatalf("exit %d stdout %q stderr %s", r.code, r.out, r.err)
	}
	docs, err := manifest.ReadFiles([]string{out}, nil)
	if err != nil || len(docs) != 6 {
		t.Fatalf("%d documents, %v", len(docs), err)
	}
	// what migrate wrote passes check
	if r := run(t, "", false, "portico", "check", out); r.code != 0 {
		t.Errorf("check of the output: exit %d\n%s%s", r.code, r.out, r.err)
	}
}

func TestColourOnTerminal(t *testing.T) {
	r := run(t, goodPool+"---\nkind: X\n", true, "portico", "check", "-")
	if !strings.Contains(r.err, "\x1b[31m1 error\x1b[0m") {
		t.Errorf("no colour on a terminal: %q", r.err)
	}
	var out, errOut strings.Builder
	Main([]string{"portico", "check", "-"}, Streams{In: strings.NewReader(goodPool), Out: &out, Err: &errOut, OutTerminal: true, ErrTerminal: true, NoColor: true})
	if strings.Contains(errOut.String(), "\x1b[") {
		t.Errorf("colour despite NO_COLOR: %q", errOut.String())
	}
}
