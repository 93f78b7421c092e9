// Command testsummary reads `go test -json` on stdin, prints the output plain `go test`
// would print, and ends with a count of passed, failed and skipped tests, then one line
// per skipped test (package, name, the skip message) and per failure, so a run that
// skipped tests never ends in a bare `ok`. It exits non-zero when the stream reports a
// failure (a test, a package, a build) or holds no test results at all; `make test`
// pipes into it under pipefail, so go test's own exit status counts too.
//
//	go test -json ./... | go run ./hack/testsummary [-v]
//
// A package whose TestMain prints a line starting with "SKIP: " and exits 0 (the lab
// tests when the machine lacks what the lab needs) counts as one skip. With -v every
// output line is printed as it arrives, as `go test -v` would; without it a passing
// package shows only its `ok` line and a failing one the output of its failed tests.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
)

func main() {
	verbose := flag.Bool("v", false, "print every test's output, as go test -v does")
	flag.Parse()
	os.Exit(run(os.Stdin, os.Stdout, *verbose))
}

// event is one line of `go test -json` (cmd/test2json), with the build events.
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	ImportPath  string
	FailedBuild string
}

type line struct{ test, text string }

// pkg is what is known of one package until its final event.
type pkg struct {
	lines  []line
	result map[string]string // test -> pass, fail or skip
	reason map[string]string // test -> its last logged message
}

type summary struct {
	out     io.Writer
	verbose bool
	pkgs    map[string]*pkg
	seen    bool // any test event at all
	midLine bool // the last output did not end a line

	passed, failed int
	skips          []string // "pkg Test: reason"
	failures       []string // "pkg Test", "pkg: build failed", ...
	broken         int      // package-level failures not explained by a failed test
}

func run(in io.Reader, out io.Writer, verbose bool) int {
	s := &summary{out: out, verbose: verbose, pkgs: map[string]*pkg{}}
	r := bufio.NewReader(in)
	for {
		b, err := r.ReadBytes('\n')
		if len(b) > 0 {
			s.handle(b)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintf(out, "testsummary: reading: %v\n", err)
			return 1
		}
	}
	return s.finish()
}

func (s *summary) handle(b []byte) {
	var e event
	if json.Unmarshal(b, &e) != nil || e.Action == "" {
		s.print(string(b)) // not from go test -json: pass it on
		return
	}
	s.seen = true
	switch e.Action {
	case "build-output":
		s.print(e.Output)
		return
	case "build-fail":
		// The package's own fail event (with FailedBuild) follows and is
		// counted there.
		return
	}
	p := s.pkgs[e.Package]
	if p == nil {
		p = &pkg{result: map[string]string{}, reason: map[string]string{}}
		s.pkgs[e.Package] = p
	}
	switch e.Action {
	case "output":
		if s.verbose {
			s.print(e.Output)
		}
		p.lines = append(p.lines, line{e.Test, e.Output})
		if m := logLine.FindStringSubmatch(e.Output); m != nil && e.Test != "" {
			p.reason[e.Test] = m[1]
		}
	case "pass", "fail", "skip":
		if e.Test != "" {
			s.endTest(e, p)
		} else {
			s.endPackage(e, p)
		}
	}
}

// logLine is a t.Log/t.Skip line: indented "file.go:NN: message".
var logLine = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)`)

func (s *summary) endTest(e event, p *pkg) {
	p.result[e.Test] = e.Action
	switch e.Action {
	case "pass":
		s.passed++
	case "fail":
		s.failed++
		s.failures = append(s.failures, e.Package+" "+e.Test)
	case "skip":
		reason := p.reason[e.Test]
		if reason == "" {
			reason = "(no message)"
		}
		s.skips = append(s.skips, e.Package+" "+e.Test+": "+reason)
	}
}

func (s *summary) endPackage(e event, p *pkg) {
	delete(s.pkgs, e.Package)
	testFailed := false
	for _, r := range p.result {
		testFailed = testFailed || r == "fail"
	}
	for _, l := range p.lines {
		if l.test == "" && strings.HasPrefix(l.text, "SKIP: ") {
			s.skips = append(s.skips, e.Package+" (whole package, from TestMain): "+strings.TrimSpace(strings.TrimPrefix(l.text, "SKIP: ")))
		}
	}
	if e.Action == "fail" && !testFailed {
		s.broken++
		what := "failed outside its tests (TestMain, a panic or a timeout: see its output above)"
		if e.FailedBuild != "" {
			what = "build failed"
		}
		s.failures = append(s.failures, e.Package+": "+what)
	}
	if s.verbose {
		return
	}
	// What plain `go test` prints: for a passing package its `ok` (or `?`)
	// line; for a failing one the output of its failed tests and of the
	// package itself, without the === framing lines.
	for _, l := range p.lines {
		switch {
		case e.Action != "fail":
			if l.test == "" && (strings.HasPrefix(l.text, "ok ") || strings.HasPrefix(l.text, "? ")) {
				s.print(l.text)
			}
		case strings.HasPrefix(l.text, "=== "):
		case l.test == "" || p.result[l.test] == "fail":
			s.print(l.text)
		}
	}
}

func (s *summary) print(text string) {
	io.WriteString(s.out, text)
	s.midLine = !strings.HasSuffix(text, "\n")
}

// finish prints the summary and returns the exit status.
func (s *summary) finish() int {
	if s.midLine {
		fmt.Fprintln(s.out)
	}
	for _, name := range slices.Sorted(maps.Keys(s.pkgs)) {
		s.broken++
		s.failures = append(s.failures, name+": did not finish (go test stopped before its result)")
	}
	if !s.seen {
		fmt.Fprintln(s.out, "testsummary: no go test -json results on input")
		return 1
	}
	total := fmt.Sprintf("tests: %d passed, %d failed, %d skipped", s.passed, s.failed, len(s.skips))
	switch {
	case s.broken == 1:
		total += ", 1 package failed outside a test"
	case s.broken > 1:
		total += fmt.Sprintf(", %d packages failed outside a test", s.broken)
	}
	fmt.Fprintln(s.out, total)
	for _, l := range s.skips {
		fmt.Fprintln(s.out, "SKIP "+l)
	}
	for _, l := range s.failures {
		fmt.Fprintln(s.out, "FAIL "+l)
	}
	if s.failed > 0 || s.broken > 0 {
		return 1
	}
	return 0
}
