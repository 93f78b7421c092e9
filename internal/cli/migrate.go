package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portico-lb/portico/internal/manifest"
	"github.com/portico-lb/portico/internal/migrate"
	"github.com/portico-lb/portico/internal/version"
)

func newMigrate(s Streams) *cobra.Command {
	var from, output string
	var opts migrate.Options
	cmd := &cobra.Command{
		Use:   "migrate --from metallb|openelb FILE...",
		Short: "Convert MetalLB or OpenELB configuration into Portico objects",
		Long: `migrate converts configuration into Portico objects and writes them as YAML
on standard output (or to the file given with -o); it changes nothing in any
cluster. On standard error it names every field it could not carry over, or
carried over with another meaning, with the reason; the commands to run before
applying (creating Secrets for BGP passwords); and what portico check says of
the result.

--from metallb reads metallb.io/v1beta1 and v1beta2 IPAddressPool,
L2Advertisement, BGPAdvertisement, BGPPeer, BFDProfile and Community, the older
AddressPool kind, and the ConfigMap of MetalLB 0.12 and earlier. --from openelb
reads network.kubesphere.io/v1alpha2 Eip, BgpConf and BgpPeer.

The exit code is 1, and nothing is written, when some input cannot be read; it
is also 1 (the output written) when the result does not pass portico check.`,
		Example: `  kubectl get ipaddresspools,l2advertisements,bgpadvertisements,bgppeers,bfdprofiles,communities \
      -n metallb-system -o yaml | portico migrate --from metallb - > portico.yaml
  portico migrate --from openelb -o portico.yaml eips.yaml bgp.yaml`,
		Args: needFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" {
				return usageError{fmt.Errorf("--from is required: metallb or openelb")}
			}
			if err := oneOf("from", from, string(migrate.MetalLB), string(migrate.OpenELB)); err != nil {
				return err
			}
			docs, err := manifest.ReadFiles(args, s.In)
			if err != nil {
				return err
			}
			res, err := migrate.Convert(migrate.From(from), docs, opts)
			if err != nil {
				return err
			}
			return writeMigration(s, migrate.From(from), args, output, opts.Namespace, res)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "what the files are: metallb or openelb")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the Portico objects to this file instead of standard output")
	cmd.Flags().StringVar(&opts.Namespace, "namespace", "portico-system", "the namespace Portico runs in, where password Secrets go")
	return cmd
}

// writeMigration reports the notes and, unless the input was malformed,
// writes the converted objects.
func writeMigration(s Streams, from migrate.From, files []string, output, namespace string, res *migrate.Result) error {
	st := s.errStyle()
	errs, notes := 0, 0
	for _, n := range res.Notes {
		if n.Error {
			errs++
			fmt.Fprintf(s.Err, "%s %s\n", st.Bad("error:"), n)
		} else {
			notes++
			fmt.Fprintf(s.Err, "%s %s\n", st.Warn("note:"), n)
		}
	}
	if res.Malformed() {
		fmt.Fprintf(s.Err, "%s: nothing written; fix the input and run portico migrate again\n", st.Bad(plural(errs, "input error")))
		return errProblems
	}
	findings, err := res.Check(namespace)
	if err != nil {
		return err
	}
	for _, f := range findings {
		fmt.Fprintf(s.Err, "%s %s\n", st.Bad("check:"), f)
	}
	if cmds := res.Commands(); len(cmds) > 0 {
		fmt.Fprintf(s.Err, "%s\n", st.Bold("Before applying, run:"))
		for _, c := range cmds {
			fmt.Fprintf(s.Err, "  %s\n", c)
		}
	}
	header := fmt.Sprintf("Converted from %s by portico migrate %s (from %s).\n", from.Name(), version.Version, strings.Join(files, ", "))
	if notes > 0 {
		header += fmt.Sprintf("It printed %s about fields not carried over as they were: review them before applying.\n", plural(notes, "note"))
	}
	data, err := res.YAML(header)
	if err != nil {
		return err
	}
	where := "standard output"
	if output == "" {
		if _, err := s.Out.Write(data); err != nil {
			return err
		}
	} else {
		if err := writeFile(output, data); err != nil {
			return err
		}
		where = output
	}
	summary := fmt.Sprintf("%s written to %s; %s", plural(len(res.Objects), "Portico object"), where, plural(notes, "note"))
	if len(findings) > 0 {
		fmt.Fprintf(s.Err, "%s; %s\n", summary, st.Bad(plural(len(findings), "problem")+" found by portico check in the result: fix them before applying"))
		return errProblems
	}
	fmt.Fprintf(s.Err, "%s; the result passes portico check\n", summary)
	return nil
}

// writeFile writes data to path through a temporary file in the same folder,
// so an interrupted write never leaves half a manifest.
func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
