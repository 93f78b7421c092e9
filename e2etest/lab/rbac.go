package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
)

// Identities the controller and the speakers run as: plain users with a
// token, bound to the roles in config/rbac, so every lab run proves that
// those roles are enough.
var identities = []string{"controller", "speaker"}

func roleUser(who string) string { return "portico-" + who }

func roleToken(admin, who string) string { return admin + "-" + who }

// tokenLines are the token file's lines for the identities.
func tokenLines(admin string) string {
	var b strings.Builder
	for _, who := range identities {
		fmt.Fprintf(&b, "%s,%s,%s\n", roleToken(admin, who), roleUser(who), roleUser(who))
	}
	return b.String()
}

// installRBAC creates the generated roles and binds each to its user.
func (l *Lab) installRBAC() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, who := range identities {
		path := filepath.Join(l.Root, "config", "rbac", who, "role.yaml")
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: roleUser(who)}}
		for _, doc := range strings.Split(string(data), "\n---\n") {
			if strings.TrimSpace(strings.Trim(doc, "-\n")) == "" {
				continue
			}
			role := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &role.Object); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if err := l.Client.Create(ctx, role); err != nil {
				return fmt.Errorf("creating %s %s from %s: %w", role.GetKind(), role.GetName(), path, err)
			}
			ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: role.GetKind(), Name: role.GetName()}
			meta := metav1.ObjectMeta{Name: role.GetName(), Namespace: role.GetNamespace()}
			var binding client.Object
			switch role.GetKind() {
			case "ClusterRole":
				binding = &rbacv1.ClusterRoleBinding{ObjectMeta: meta, RoleRef: ref, Subjects: subject}
			case "Role":
				binding = &rbacv1.RoleBinding{ObjectMeta: meta, RoleRef: ref, Subjects: subject}
			default:
				return fmt.Errorf("%s: unexpected kind %q", path, role.GetKind())
			}
			if err := l.Client.Create(ctx, binding); err != nil {
				return fmt.Errorf("binding %s to %s: %w", role.GetName(), roleUser(who), err)
			}
		}
	}
	// The API server's authorizer learns of new bindings through a watch:
	// wait until each identity is allowed in, so nothing starts forbidden.
	for _, who := range identities {
		cfg := rest.CopyConfig(l.REST)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: roleUser(who)}
		c, err := client.New(cfg, client.Options{Scheme: Scheme})
		if err != nil {
			return err
		}
		for {
			err := c.List(ctx, &porticov1.IPAddressPoolList{})
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%s still cannot list IPAddressPools with its role: %w", roleUser(who), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}
