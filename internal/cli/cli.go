// Package cli is the `portico` command (also installed as kubectl-portico, so
// `kubectl portico ...` works): `check` validates manifests offline, `migrate`
// converts MetalLB or OpenELB configuration, `status` shows the cluster's state
// on one screen. The work is done by internal/check, internal/migrate and
// internal/statusview; this package parses arguments, picks the output form and
// decides the exit code: 0 when all is well, 1 when the input or the cluster has a
// problem, 2 when the command line is wrong.
//
// Colour and progress appear only on a stream that is a terminal (and not when
// NO_COLOR is set); otherwise the output is plain text.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/portico-lb/portico/internal/statusview"
	"github.com/portico-lb/portico/internal/version"
)

// Streams are the command's input and outputs, and whether each output is a
// terminal.
type Streams struct {
	In          io.Reader
	Out, Err    io.Writer
	OutTerminal bool
	ErrTerminal bool
	// NoColor turns colour off even on a terminal (the NO_COLOR convention).
	NoColor bool
	// Now returns the time ages are counted from; time.Now when nil.
	Now func() time.Time
}

// OSStreams returns the process's standard streams.
func OSStreams() Streams {
	return Streams{
		In: os.Stdin, Out: os.Stdout, Err: os.Stderr,
		OutTerminal: term.IsTerminal(int(os.Stdout.Fd())),
		ErrTerminal: term.IsTerminal(int(os.Stderr.Fd())),
		NoColor:     os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb",
	}
}

func (s Streams) outStyle() statusview.Style {
	return statusview.Style{Color: s.OutTerminal && !s.NoColor}
}

func (s Streams) errStyle() statusview.Style {
	return statusview.Style{Color: s.ErrTerminal && !s.NoColor}
}

func (s Streams) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Exit codes.
const (
	ExitOK       = 0
	ExitProblems = 1
	ExitUsage    = 2
)

// usageError is a mistake on the command line.
type usageError struct{ error }

// problemsError ends a command that has already said what is wrong.
var errProblems = errors.New("problems found")

// Main runs the command line args (args[0] is the program's name) and returns
// the exit code.
func Main(args []string, s Streams) int {
	name := "portico"
	if len(args) > 0 && strings.HasPrefix(filepath.Base(args[0]), "kubectl-") {
		name = "kubectl portico"
	}
	root := newRoot(name, s)
	root.SetArgs(args[1:])
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	err := root.Execute()
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errProblems):
		return ExitProblems
	case errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag"):
		fmt.Fprintf(s.Err, "%s: %v\nRun '%s --help' for usage.\n", name, err, name)
		return ExitUsage
	}
	fmt.Fprintf(s.Err, "%s: %v\n", name, err)
	return ExitProblems
}

func newRoot(name string, s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   name,
		Short: "Check, migrate and inspect Portico, the load balancer for bare-metal Kubernetes",
		Long: name + ` checks Portico manifests offline with the validation the cluster runs,
converts MetalLB and OpenELB configuration into Portico objects, and shows the
state of Portico in a cluster on one screen.`,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("portico {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(newCheck(s), newMigrate(s), newStatus(s))
	return root
}

// needFiles requires at least one file argument.
func needFiles(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return usageError{fmt.Errorf("%s needs at least one file (or - for standard input)", cmd.Name())}
	}
	return nil
}

// oneOf checks a flag's value against its allowed values.
func oneOf(flag, value string, allowed ...string) error {
	for _, a := range allowed {
		if value == a {
			return nil
		}
	}
	return usageError{fmt.Errorf("--%s %q: use one of %s", flag, value, strings.Join(allowed, ", "))}
}

// plural returns "1 file" or "2 files".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
