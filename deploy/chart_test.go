package deploy_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/portico-lb/portico/deploy"
	"github.com/portico-lb/portico/internal/membership"
)

// valueSets are the values the chart is linted, rendered and applied with.
var valueSets = []struct {
	name  string
	flags []string
}{
	{"defaults", nil},
	{"everything on", []string{"-f", "testdata/values-everything.yaml"}},
	{"one replica", []string{"-f", "testdata/values-single.yaml"}},
	{"manifests", deploy.ManifestFlags},
}

func render(t *testing.T, flags ...string) []object {
	t.Helper()
	out, err := deploy.Template(helm(t), root(t), deploy.Namespace, abs(t, flags)...)
	if err != nil {
		t.Fatal(err)
	}
	return parse(t, out)
}

// abs makes -f files relative to this package usable from the repository root,
// where helm runs.
func abs(t *testing.T, flags []string) []string {
	out := slices.Clone(flags)
	for i := range out {
		if i > 0 && out[i-1] == "-f" {
			p, err := filepath.Abs(out[i])
			if err != nil {
				t.Fatal(err)
			}
			out[i] = p
		}
	}
	return out
}

func TestChartLints(t *testing.T) {
	h := helm(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			args := append([]string{"lint", "--strict", deploy.ChartDir, "--namespace", deploy.Namespace}, abs(t, vs.flags)...)
			if out, err := runIn(root(t), h, args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestChartCopiesConfig checks that the chart's CRDs and RBAC rules are the
// ones `make generate` writes to config/crd and config/rbac: `make helm` copies
// them.
func TestChartCopiesConfig(t *testing.T) {
	r := root(t)
	want, _ := filepath.Glob(filepath.Join(r, "config/crd/*.yaml"))
	got, _ := filepath.Glob(filepath.Join(r, deploy.ChartDir, "crds/*.yaml"))
	if len(want) == 0 {
		t.Fatal("no CRDs in config/crd")
	}
	names := func(paths []string) (n []string) {
		for _, p := range paths {
			n = append(n, filepath.Base(p))
		}
		return n
	}
	if !slices.Equal(names(want), names(got)) {
		t.Errorf("charts/portico/crds has %v, config/crd has %v: run `make helm`", names(got), names(want))
	}
	pairs := map[string]string{
		"config/rbac/controller/role.yaml": deploy.ChartDir + "/files/rbac/controller.yaml",
		"config/rbac/speaker/role.yaml":    deploy.ChartDir + "/files/rbac/speaker.yaml",
	}
	for _, p := range want {
		pairs["config/crd/"+filepath.Base(p)] = deploy.ChartDir + "/crds/" + filepath.Base(p)
	}
	for src, dst := range pairs {
		a, err := os.ReadFile(filepath.Join(r, src))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(r, dst))
		if err != nil {
			t.Errorf("%s: %v: run `make helm`", dst, err)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s: run `make helm`", dst, src)
		}
	}
}

// TestChartSpeakerSecretNames: the speaker's Role lets it get only the
// memberlist Secret (by whatever name the values give it) and the BGP
// password Secrets listed in speaker.bgpPasswordSecrets, by name; a name that
// cannot be a Secret's is refused.
func TestChartSpeakerSecretNames(t *testing.T) {
	for _, c := range []struct {
		flags []string
		want  []any
	}{
		{nil, []any{"portico-memberlist"}},
		{[]string{"--set-json", `speaker.bgpPasswordSecrets=["tor-a","tor-b"]`}, []any{"portico-memberlist", "tor-a", "tor-b"}},
		{[]string{"--set", "speaker.memberlist.secret.create=false", "--set", "speaker.memberlist.secret.existingSecret=ours",
			"--set-json", `speaker.bgpPasswordSecrets=["tor-a"]`}, []any{"ours", "tor-a"}},
	} {
		role := find(t, render(t, c.flags...), "Role", "portico-speaker")
		rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
		var secretRules int
		for _, r := range rules {
			rule := r.(map[string]any)
			if !slices.Contains(rule["resources"].([]any), any("secrets")) {
				continue
			}
			secretRules++
			if !reflect.DeepEqual(rule["resourceNames"], c.want) || !reflect.DeepEqual(rule["verbs"], []any{"get"}) {
				t.Errorf("with %v the speaker's Secret rule is %v, want get on %v", c.flags, rule, c.want)
			}
		}
		if secretRules != 1 {
			t.Errorf("with %v the speaker's Role has %d Secret rules, want 1: %v", c.flags, secretRules, rules)
		}
	}
	_, err := deploy.Template(helm(t), root(t), deploy.Namespace, "--set-json", `speaker.bgpPasswordSecrets=["Not_A_Name"]`)
	if err == nil || !strings.Contains(err.Error(), "bgpPasswordSecrets/0") {
		t.Errorf("a bad Secret name in speaker.bgpPasswordSecrets: %v", err)
	}
}

// TestChartRBACMatchesCode compares the rendered roles' rules with the ones
// generated from the code's kubebuilder markers.
func TestChartRBACMatchesCode(t *testing.T) {
	objs := render(t)
	for _, c := range deploy.Components {
		data, err := os.ReadFile(filepath.Join(root(t), "config/rbac", c, "role.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		generated := parse(t, data)
		for _, kind := range []string{"ClusterRole", "Role"} {
			want := find(t, generated, kind, "portico-"+c)
			got := find(t, objs, kind, "portico-"+c)
			if !reflect.DeepEqual(got.Object["rules"], want.Object["rules"]) {
				t.Errorf("%s portico-%s: the chart's rules differ from config/rbac/%s:\nchart: %v\ncode:  %v", kind, c, c, got.Object["rules"], want.Object["rules"])
			}
			if kind == "Role" && got.GetNamespace() != deploy.Namespace {
				t.Errorf("Role portico-%s in namespace %q, want the release namespace", c, got.GetNamespace())
			}
		}
		// Each component runs as its own ServiceAccount, bound to its roles only.
		sa := "portico-" + c
		find(t, objs, "ServiceAccount", sa)
		for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
			b := find(t, objs, kind, sa)
			subjects, _, _ := unstructured.NestedSlice(b.Object, "subjects")
			ref, _, _ := unstructured.NestedString(b.Object, "roleRef", "name")
			if len(subjects) != 1 || subjects[0].(map[string]any)["name"] != sa || ref != sa {
				t.Errorf("%s %s binds %v to %s, want only ServiceAccount %s to its own role", kind, sa, subjects, ref, sa)
			}
		}
	}
}

func container(t *testing.T, o object) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("%s %s has %d containers, want 1", o.GetKind(), o.GetName(), len(cs))
	}
	return cs[0].(map[string]any)
}

func strs(m map[string]any, fields ...string) []string {
	v, _, _ := unstructured.NestedStringSlice(m, fields...)
	return v
}

func str(m map[string]any, fields ...string) string {
	v, _, _ := unstructured.NestedFieldNoCopy(m, fields...)
	s, _ := v.(string)
	if s == "" && v != nil {
		b, _ := yaml.Marshal(v)
		s = strings.TrimSpace(string(b))
	}
	return s
}

// TestChartDefaults checks what the defaults install: the controller's and the
// speaker's pods as issue 11 asks for them, and every argument accepted by the
// real binaries' flag parsers.
func TestChartDefaults(t *testing.T) {
	objs := render(t)

	dep := find(t, objs, "Deployment", "portico-controller")
	if r := str(dep.Object, "spec", "replicas"); r != "2" {
		t.Errorf("controller replicas %s, want 2", r)
	}
	c := container(t, dep)
	wantArgs(t, "controller", strs(c, "args"), "--leader-elect=true", "--health-probe-bind-address=:8081")
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if p, port := str(c, probe, "httpGet", "path"), str(c, probe, "httpGet", "port"); p != path || port != "health" {
			t.Errorf("controller %s: %s on port %s, want %s on health", probe, p, port, path)
		}
	}
	ports, _, _ := unstructured.NestedSlice(c, "ports")
	if !slices.ContainsFunc(ports, func(p any) bool {
		m := p.(map[string]any)
		return m["name"] == "health" && fmt.Sprint(m["containerPort"]) == "8081"
	}) {
		t.Errorf("controller ports %v: no health port 8081", ports)
	}
	for field, want := range map[string]string{
		"securityContext.readOnlyRootFilesystem":   "true",
		"securityContext.allowPrivilegeEscalation": "false",
		"securityContext.capabilities.drop":        "- ALL",
		"resources.requests.cpu":                   "100m",
		"resources.requests.memory":                "128Mi",
	} {
		if got := str(c, strings.Split(field, ".")...); got != want {
			t.Errorf("controller %s = %q, want %q", field, got, want)
		}
	}
	if v := str(dep.Object, "spec", "template", "spec", "securityContext", "runAsNonRoot"); v != "true" {
		t.Errorf("controller pod runAsNonRoot = %s", v)
	}
	if sa := str(dep.Object, "spec", "template", "spec", "serviceAccountName"); sa != "portico-controller" {
		t.Errorf("controller runs as %q", sa)
	}
	pdb := find(t, objs, "PodDisruptionBudget", "portico-controller")
	if v := str(pdb.Object, "spec", "maxUnavailable"); v != "1" {
		t.Errorf("PDB maxUnavailable %s", v)
	}

	ds := find(t, objs, "DaemonSet", "portico-speaker")
	pod := ds.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	if pod["hostNetwork"] != true {
		t.Error("speaker is not in the host network")
	}
	if sa := pod["serviceAccountName"]; sa != "portico-speaker" {
		t.Errorf("speaker runs as %v", sa)
	}
	s := container(t, ds)
	if add, drop := strs(s, "securityContext", "capabilities", "add"), strs(s, "securityContext", "capabilities", "drop"); !slices.Equal(add, []string{"NET_RAW"}) || !slices.Equal(drop, []string{"ALL"}) {
		t.Errorf("speaker capabilities add %v drop %v, want only NET_RAW after dropping ALL", add, drop)
	}
	if str(s, "securityContext", "readOnlyRootFilesystem") != "true" || str(s, "securityContext", "allowPrivilegeEscalation") != "false" {
		t.Errorf("speaker securityContext %v", s["securityContext"])
	}
	tol, _ := yaml.Marshal(pod["tolerations"])
	if !strings.Contains(string(tol), "node-role.kubernetes.io/control-plane") {
		t.Errorf("speaker tolerations %s: none for control-plane nodes", tol)
	}
	env, _ := yaml.Marshal(s["env"])
	if !strings.Contains(string(env), "name: NODE_NAME") || !strings.Contains(string(env), "fieldPath: spec.nodeName") {
		t.Errorf("speaker env %s: NODE_NAME is not the pod's node", env)
	}
	sports, _ := yaml.Marshal(s["ports"])
	for _, want := range []string{"containerPort: 7946\n  name: memberlist-tcp\n  protocol: TCP", "containerPort: 7946\n  name: memberlist-udp\n  protocol: UDP"} {
		if !strings.Contains(string(sports), want) {
			t.Errorf("speaker ports %s lack %q", sports, want)
		}
	}
	wantArgs(t, "speaker", strs(s, "args"),
		"--namespace="+deploy.Namespace, "--memberlist-secret=portico-memberlist", "--memberlist-port=7946", "--log-level=info")

	// The memberlist key: generated, and a key the speaker accepts.
	sec := find(t, objs, "Secret", "portico-memberlist")
	enc := str(sec.Object, "data", "secretkey")
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatalf("secretkey is not base64: %v", err)
	}
	key, err := membership.ParseKey(membership.SecretRef{Namespace: deploy.Namespace, Name: "portico-memberlist", Key: "secretkey"}, raw)
	if err != nil || len(key) != 32 {
		t.Errorf("the generated memberlist key: %d bytes, %v; want 32", len(key), err)
	}
	// A second rendering (a new install) gets another key.
	if again := str(find(t, render(t), "Secret", "portico-memberlist").Object, "data", "secretkey"); again == enc {
		t.Error("two installs got the same memberlist key")
	}

	for _, kind := range []string{"ValidatingWebhookConfiguration", "ServiceMonitor", "Namespace"} {
		for _, o := range objs {
			if o.GetKind() == kind {
				t.Errorf("defaults render a %s (%s), which should be off", kind, o.GetName())
			}
		}
	}
}

// TestChartValueSets checks what each value set changes, and that the binaries
// accept every argument rendered with it.
func TestChartValueSets(t *testing.T) {
	t.Run("everything on", func(t *testing.T) {
		objs := render(t, "-f", "testdata/values-everything.yaml")
		vwc := find(t, objs, "ValidatingWebhookConfiguration", "portico-validating-webhook")
		svc := find(t, objs, "Service", "portico-webhook")
		if n := str(vwc.Object, "webhooks"); !strings.Contains(n, "name: portico-webhook") || !strings.Contains(n, "/validate-portico-dev-v1alpha1") {
			t.Errorf("webhook client config does not name Service portico-webhook and the controller's path: %s", n)
		}
		if p := str(svc.Object, "spec", "ports"); !strings.Contains(p, "targetPort: webhook") {
			t.Errorf("webhook Service ports %s", p)
		}
		wantArgs(t, "controller", strs(container(t, find(t, objs, "Deployment", "portico-controller")), "args"),
			"--enable-webhook", "--lb-class=example.com/portico", "--v=4", "--webhook-port=9443")
		sargs := strs(container(t, find(t, objs, "DaemonSet", "portico-speaker")), "args")
		wantArgs(t, "speaker", sargs,
			"--lb-class=example.com/portico", "--log-level=debug", "--memberlist-probe-interval=200ms", "--memberlist-port=7947")
		for _, c := range deploy.Components {
			find(t, objs, "ServiceMonitor", "portico-"+c)
			find(t, objs, "Service", "portico-"+c+"-metrics")
		}
		ns := find(t, objs, "Namespace", deploy.Namespace)
		if ns.GetLabels()["pod-security.kubernetes.io/enforce"] != "privileged" {
			t.Errorf("namespace labels %v", ns.GetLabels())
		}
		if has(objs, "Secret", "portico-memberlist") || !slices.Contains(sargs, "--memberlist-secret=my-memberlist-key") {
			t.Errorf("existingSecret: the chart made its own Secret or the speaker does not read %q", "my-memberlist-key")
		}
	})
	t.Run("one replica", func(t *testing.T) {
		objs := render(t, "-f", "testdata/values-single.yaml")
		dep := find(t, objs, "Deployment", "portico-controller")
		if r := str(dep.Object, "spec", "replicas"); r != "1" {
			t.Errorf("one replica: replicas %s", r)
		}
		wantArgs(t, "controller", strs(container(t, dep), "args"), "--leader-elect=false")
		if has(objs, "PodDisruptionBudget", "portico-controller") {
			t.Error("PodDisruptionBudget rendered though disabled")
		}
		ds := find(t, objs, "DaemonSet", "portico-speaker")
		if sel := str(ds.Object, "spec", "template", "spec", "nodeSelector"); !strings.Contains(sel, "portico.dev/speaker: \"true\"") {
			t.Errorf("speaker nodeSelector %s", sel)
		}
	})
}

// TestChartRefusesContradictions: values that contradict each other are
// refused by helm with a message that says what to change.
func TestChartRefusesContradictions(t *testing.T) {
	h := helm(t)
	cases := []struct {
		name string
		set  []string
		want string
	}{
		{"webhook without a certificate option", []string{"webhook.enabled=true"}, "at '/webhook/certificate': value must be 'controller'"},
		{"no controller", []string{"controller.replicas=0"}, "at '/controller/replicas': minimum: got 0, want 1"},
		{"two leaders", []string{"controller.leaderElection.enabled=false"}, "at '/controller/leaderElection/enabled': value must be true"},
		{"no memberlist key", []string{"speaker.memberlist.secret.create=false"}, "at '/speaker/memberlist/secret/existingSecret': minLength: got 0, want 1"},
		{"probe timeout not below the interval", []string{"speaker.memberlist.probeTimeout=1s"}, "probeTimeout (1s) must be shorter than speaker.memberlist.probeInterval (100ms)"},
		{"unknown log level", []string{"logLevel=verbose"}, "at '/logLevel': value must be one of 'debug', 'info', 'warn', 'error'"},
		{"speaker without NET_RAW", []string{"speaker.capabilities={NET_ADMIN}"}, "value must be 'NET_RAW'"},
		{"misspelt value", []string{"controler.replicas=3"}, "additional properties 'controler' not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := deploy.Template(h, root(t), deploy.Namespace, args...)
			if err == nil {
				t.Fatalf("helm template accepted --set %v:\n%.300s", tc.set, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm refused --set %v, but its message does not mention %q:\n%v", tc.set, tc.want, err)
			}
			t.Logf("--set %s: %v", strings.Join(tc.set, " --set "), err)
		})
	}
}
