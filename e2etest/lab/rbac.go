package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/deploy"
)

// The lab installs Portico's CRDs, ServiceAccounts, roles and bindings from the
// Helm chart's rendered output (helm template of charts/portico, rendered once
// per lab), and the controller and the speakers authenticate as the chart's
// ServiceAccounts with tokens from the TokenRequest API, as pods would: every
// lab run proves that the chart's roles are enough. The chart's workloads
// (Deployment, DaemonSet, Secret, ...) are not installed: the lab runs the
// binaries itself, as processes in its namespaces.

// chartKinds are the kinds of the rendered chart the lab installs.
var chartKinds = map[string]bool{
	"ServiceAccount": true, "ClusterRole": true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true,
}

// serviceAccounts are the chart's ServiceAccounts of the lab's processes.
const (
	controllerSA = "portico-controller"
	speakerSA    = "portico-speaker"
)

// BGPPasswordSecret is the BGP password Secret the e2e tests' peers name,
// the only one the speakers' Role grants besides the memberlist Secret.
const BGPPasswordSecret = "bgp-password"

// saTokenLifetime is how long the processes' tokens are valid: longer than
// any lab is kept up.
const saTokenLifetime = 365 * 24 * time.Hour

// renderChart renders the chart with the real helm CLI (bin/tools/helm, or
// $HELM) into the release namespace the binaries default to, keeping the
// CRDs and the RBAC objects.
func (l *Lab) renderChart() error {
	helm, err := deploy.Helm(l.Root)
	if err != nil {
		return err
	}
	out, err := deploy.Template(helm, l.Root, SystemNamespace,
		"--set-json", fmt.Sprintf(`speaker.bgpPasswordSecrets=[%q]`, BGPPasswordSecret))
	if err != nil {
		return err
	}
	l.chartCRDs, l.chartRBAC = nil, nil
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("helm template %s: output does not parse: %w", deploy.ChartDir, err)
		}
		switch kind := u.GetKind(); {
		case kind == "CustomResourceDefinition":
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, crd); err != nil {
				return fmt.Errorf("helm template %s: CRD %s: %w", deploy.ChartDir, u.GetName(), err)
			}
			l.chartCRDs = append(l.chartCRDs, crd)
		case chartKinds[kind]:
			l.chartRBAC = append(l.chartRBAC, &u)
		}
	}
	if len(l.chartCRDs) == 0 || len(l.chartRBAC) == 0 {
		return fmt.Errorf("helm template %s rendered %d CRDs and %d RBAC objects; want both", deploy.ChartDir, len(l.chartCRDs), len(l.chartRBAC))
	}
	return nil
}

// installCRDs installs the chart's CRDs and waits until they are served.
func (l *Lab) installCRDs() error {
	_, err := envtest.InstallCRDs(l.REST, envtest.CRDInstallOptions{CRDs: l.chartCRDs, Scheme: Scheme})
	return err
}

// installRBAC creates the chart's ServiceAccounts, roles and bindings, then
// writes the controller's and the speakers' kubeconfigs with a token of
// their ServiceAccount each.
func (l *Lab) installRBAC() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, obj := range l.chartRBAC {
		if err := l.Client.Create(ctx, obj.DeepCopy()); err != nil {
			return fmt.Errorf("creating %s %s from helm template %s: %w", obj.GetKind(), obj.GetName(), deploy.ChartDir, err)
		}
	}
	l.ControllerKubeconfig = filepath.Join(l.RunDir, "controller.kubeconfig")
	l.SpeakerKubeconfig = filepath.Join(l.RunDir, "speaker.kubeconfig")
	for sa, kubeconfig := range map[string]string{controllerSA: l.ControllerKubeconfig, speakerSA: l.SpeakerKubeconfig} {
		token, err := l.serviceAccountToken(ctx, sa)
		if err != nil {
			return err
		}
		if err := writeKubeconfig(kubeconfig, l.APIServer, "", l.caFile, token); err != nil {
			return err
		}
	}
	return nil
}

// serviceAccountToken returns a token of the ServiceAccount sa of the
// release namespace once that token is let in: the API server's authorizer
// learns of new bindings through a watch, so nothing starts forbidden.
func (l *Lab) serviceAccountToken(ctx context.Context, sa string) (string, error) {
	seconds := int64(saTokenLifetime / time.Second)
	tr, err := l.Kube.CoreV1().ServiceAccounts(SystemNamespace).CreateToken(ctx, sa,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &seconds}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for ServiceAccount %s/%s: %w", SystemNamespace, sa, err)
	}
	cfg := rest.CopyConfig(l.REST)
	cfg.BearerToken = tr.Status.Token
	c, err := client.New(cfg, client.Options{Scheme: Scheme})
	if err != nil {
		return "", err
	}
	for {
		err := c.List(ctx, &porticov1.IPAddressPoolList{})
		if err == nil {
			return tr.Status.Token, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("ServiceAccount %s/%s still cannot list IPAddressPools with the chart's roles: %w", SystemNamespace, sa, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
