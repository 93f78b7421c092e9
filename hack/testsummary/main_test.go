package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorded returns a stream recorded from `go test -json` (go1.26) on small
// packages, Time fields dropped: testdata/NAME.jsonl.
func recorded(t *testing.T, names ...string) string {
	t.Helper()
	var b strings.Builder
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join("testdata", n+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

func TestSummary(t *testing.T) {
	for _, tc := range []struct {
		name  string
		text  string   // input before the recorded files
		files []string // recorded, from testdata
		code  int
		want  []string // found in the output, in this order
		not   []string // not anywhere in the output
	}{
		{name: "pass", files: []string{"pass", "no-test-files"}, want: []string{
			"ok  \tx/a\t0.011s", "?   \tx/d\t[no test files]", "tests: 1 passed, 0 failed, 0 skipped",
		}, not: []string{"hello", "=== RUN", "PASS\n", "SKIP"}},
		{name: "fail", files: []string{"pass", "fail"}, code: 1, want: []string{
			"ok  \tx/a", "printed", "    f_test.go:5: boom", "--- FAIL: TestFail (0.00s)", "FAIL\tx/f\t0.009s",
			"tests: 1 passed, 1 failed, 0 skipped", "FAIL x/f TestFail",
		}, not: []string{"=== RUN", "hello"}},
		{name: "skip", files: []string{"skip"}, want: []string{
			"ok  \tx/s", "tests: 1 passed, 0 failed, 2 skipped",
			"SKIP x/s TestSkip: needs root (network namespaces)", "SKIP x/s TestSub/x: sub skip 1",
		}, not: []string{"before", "second line"}},
		{name: "package skip", files: []string{"package-skip", "pass"}, want: []string{
			"ok  \tx/e2e", "tests: 1 passed, 0 failed, 1 skipped",
			"SKIP x/e2e (whole package, from TestMain): lab prerequisites missing: [arping ndisc6]",
		}},
		{name: "build failure", files: []string{"build-fail", "pass"}, code: 1, want: []string{
			"# x/c [x/c.test]", "declared and not used: x", "FAIL\tx/c [build failed]",
			"tests: 1 passed, 0 failed, 0 skipped, 1 package failed outside a test", "FAIL x/c: build failed",
		}},
		{name: "unfinished", files: []string{"pass", "unfinished"}, code: 1, want: []string{
			"tests: 1 passed, 0 failed, 0 skipped, 1 package failed outside a test", "FAIL x/u: did not finish",
		}},
		{name: "not json", text: "go: downloading x v1\n", files: []string{"pass"}, want: []string{
			"go: downloading x v1", "tests: 1 passed",
		}},
		{name: "empty", code: 1, want: []string{"no go test -json results"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			code := run(strings.NewReader(tc.text+recorded(t, tc.files...)), &out, false)
			got := out.String()
			if code != tc.code {
				t.Errorf("exit status %d, want %d; output:\n%s", code, tc.code, got)
			}
			rest := got
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("output lacks %q (or has it out of order):\n%s", w, got)
					continue
				}
				rest = rest[i+len(w):]
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("output has %q:\n%s", n, got)
				}
			}
		})
	}
}

func TestVerbose(t *testing.T) {
	var out strings.Builder
	if code := run(strings.NewReader(recorded(t, "skip", "package-skip")), &out, true); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	for _, w := range []string{"=== RUN   TestSkip", "    s_test.go:4: before", "SKIP: lab prerequisites", "tests: 1 passed, 0 failed, 3 skipped"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("verbose output lacks %q:\n%s", w, out.String())
		}
	}
}
