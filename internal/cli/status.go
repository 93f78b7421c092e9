package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/portico-lb/portico/internal/statusview"
)

func newStatus(s Streams) *cobra.Command {
	var kubeconfig, kubeContext, output string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show pools, Services, speakers and every problem on one screen",
		Long: `status reads Portico's state from the cluster: each pool with its addresses and
how many are assigned and free per family; each LoadBalancer Service with its
IPs, its pool and who announces each IP (the L2 node and interfaces, the BGP
nodes and their peers); each speaker with its memberlist view and BGP sessions
(state, BFD, last error); and every problem: Ready=False conditions with their
messages, objects the controller has not reported on, Services without an
address and why, sessions that are down.

The exit code is 1 when the API server cannot be asked. --output json or yaml
prints the same report for scripts.`,
		Example: `  portico status
  kubectl portico status --context prod -o json | jq '.problems'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := oneOf("output", output, "text", "json", "yaml"); err != nil {
				return err
			}
			cfg, err := restConfig(kubeconfig, kubeContext, timeout)
			if err != nil {
				return err
			}
			// progress, only when both outputs are a terminal
			progress := s.errStyle().Color && s.OutTerminal
			if progress {
				fmt.Fprintf(s.Err, "reading from %s ...", cfg.Host)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout+time.Second)
			defer cancel()
			rep, err := statusview.Gather(ctx, cfg)
			if progress {
				fmt.Fprint(s.Err, "\r\x1b[K")
			}
			if err != nil {
				return err
			}
			switch output {
			case "json":
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			case "yaml":
				data, err := yaml.Marshal(rep)
				if err != nil {
					return err
				}
				_, err = s.Out.Write(data)
				return err
			}
			rep.Text(s.Out, s.outStyle(), s.now())
			return nil
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "the kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&kubeContext, "context", "", "the kubeconfig context to use (default its current context)")
	cmd.Flags().DurationVar(&timeout, "request-timeout", 5*time.Second, "how long to wait for the API server")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text, json or yaml")
	return cmd
}

// restConfig loads the kubeconfig as kubectl does, with a short timeout so an
// unreachable server is reported at once.
func restConfig(path, context string, timeout time.Duration) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errors.New("no kubeconfig found: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config")
		}
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	cfg.Timeout = timeout
	cfg.UserAgent = "portico-cli"
	return cfg, nil
}
