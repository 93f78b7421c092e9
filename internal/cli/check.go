package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/portico-lb/portico/internal/check"
	"github.com/portico-lb/portico/internal/manifest"
)

func newCheck(s Streams) *cobra.Command {
	var opts check.Options
	var output string
	cmd := &cobra.Command{
		Use:   "check FILE...",
		Short: "Validate Portico manifests offline, as the API server and the controller would",
		Long: `check validates Portico manifests without a cluster: each object against its
CRD (what kubectl apply would refuse: unknown fields, types, bounds, the CEL
rules), then all objects of all files together with the controller's and the
webhook's code (overlapping pools, references to missing pools, peers, BFD
profiles and community aliases, aggregation lengths).

FILE may be a file of one or more YAML documents, a folder of .yaml/.yml/.json
files, or - for standard input. Each error is printed as

  FILE: KIND/NAME: FIELD: message

and the exit code is 1 when there is any.`,
		Example: `  portico check config/samples/
  kubectl get ipaddresspools,l2advertisements -o yaml | portico check -`,
		Args: needFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := oneOf("output", output, "text", "json"); err != nil {
				return err
			}
			docs, err := manifest.ReadFiles(args, s.In)
			if err != nil {
				return err
			}
			res, err := check.Run(docs, opts)
			if err != nil {
				return err
			}
			if output == "json" {
				return checkJSON(s, res)
			}
			for _, f := range res.Findings {
				fmt.Fprintln(s.Out, f.String())
			}
			st := s.errStyle()
			files := map[string]bool{}
			for _, d := range docs {
				files[d.Source] = true
			}
			summary := fmt.Sprintf("%s checked in %s", plural(res.Checked, "Portico object"), plural(len(files), "file"))
			if len(res.Skipped) > 0 {
				summary += fmt.Sprintf(", %s of other kinds skipped", plural(len(res.Skipped), "object"))
			}
			if len(res.Findings) > 0 {
				fmt.Fprintf(s.Err, "%s: %s\n", summary, st.Bad(plural(len(res.Findings), "error")))
				return errProblems
			}
			fmt.Fprintf(s.Err, "%s: %s\n", summary, st.Good("no errors"))
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.SkipOtherKinds, "skip-other-kinds", false, "pass over objects that are not Portico's instead of reporting them")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text, or json for scripts")
	return cmd
}

// jsonFinding is a finding as --output json writes it.
type jsonFinding struct {
	File     string `json:"file"`
	Position string `json:"position"`
	Kind     string `json:"kind,omitempty"`
	Name     string `json:"name,omitempty"`
	Field    string `json:"field,omitempty"`
	Message  string `json:"message"`
}

func checkJSON(s Streams, res *check.Result) error {
	out := struct {
		Checked  int           `json:"checked"`
		Skipped  []string      `json:"skipped"`
		Findings []jsonFinding `json:"errors"`
	}{Checked: res.Checked, Skipped: append([]string{}, res.Skipped...), Findings: []jsonFinding{}}
	for _, f := range res.Findings {
		out.Findings = append(out.Findings, jsonFinding{f.Source, f.Position, f.Kind, f.Name, f.Field, f.Message})
	}
	enc := json.NewEncoder(s.Out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	if len(res.Findings) > 0 {
		return errProblems
	}
	return nil
}
