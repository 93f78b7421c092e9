package lab

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
)

// Scheme knows the built-in kinds and Portico's.
var Scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := porticov1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

func (l *Lab) startControlPlane() error {
	pki := filepath.Join(l.RunDir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return err
	}
	l.token = hex.EncodeToString(tok)
	tokens := filepath.Join(pki, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(l.token+`,lab-admin,lab-admin,"system:masters"`+"\n"), 0o600); err != nil {
		return err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	saKey := filepath.Join(pki, "sa.key")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(saKey, keyPEM, 0o600); err != nil {
		return err
	}
	etcd, err := l.start("etcd", l.CtlNS, nil, filepath.Join(l.K8sBin, "etcd"),
		"--name=lab", "--data-dir="+filepath.Join(l.RunDir, "etcd-data"),
		"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=lab=http://127.0.0.1:2380", "--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return err
	}
	l.APIServer = "https://" + APIAddr + ":" + apiPort
	if _, err := l.start("kube-apiserver", l.CtlNS, nil, filepath.Join(l.K8sBin, "kube-apiserver"),
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=0.0.0.0", "--advertise-address="+APIAddr, "--secure-port="+apiPort,
		"--cert-dir="+pki, "--token-auth-file="+tokens, "--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saKey, "--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range="+clusterIPs, "--service-node-port-range="+nodePorts,
		"--profiling=false", "--v=1"); err != nil {
		return err
	}
	l.caFile = filepath.Join(pki, "apiserver.crt")
	if err := l.waitAPIServer(90*time.Second, etcd); err != nil {
		return err
	}
	return l.clients()
}

// waitAPIServer waits for /readyz to say ok, failing early when a control
// plane process exits.
func (l *Lab) waitAPIServer(timeout time.Duration, etcd *Proc) error {
	deadline := time.Now().Add(timeout)
	api := l.Proc("kube-apiserver")
	var last error
	for time.Now().Before(deadline) {
		for _, p := range []*Proc{etcd, api} {
			if err := p.running(); err != nil {
				return err
			}
		}
		if last = l.readyz(); last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver not ready after %s: %v (see %s)", timeout, last, api.Log)
}

func (l *Lab) readyz() error {
	ca, err := os.ReadFile(l.caFile)
	if err != nil {
		return err // the server has not written its certificate yet
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext:     DialIn(l.CtlNS),
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}}
	req, _ := http.NewRequest("GET", l.APIServer+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("readyz: %s: %s", resp.Status, body)
	}
	return nil
}

// clients builds this process's API clients (dialling inside the control
// namespace) and the kubeconfig for processes in lab namespaces.
func (l *Lab) clients() error {
	ca, err := os.ReadFile(l.caFile)
	if err != nil {
		return err
	}
	l.REST = restConfig(l.APIServer, l.token, ca, l.CtlNS)
	if l.Client, err = client.New(l.REST, client.Options{Scheme: Scheme}); err != nil {
		return err
	}
	if l.Kube, err = kubernetes.NewForConfig(l.REST); err != nil {
		return err
	}
	l.NodeKubeconfig = filepath.Join(l.RunDir, "node.kubeconfig")
	l.mu.Lock()
	l.state.APIServer, l.state.Token, l.state.CAFile = l.APIServer, l.token, l.caFile
	err = l.state.save()
	l.mu.Unlock()
	if err != nil {
		return err
	}
	// The controller's and the speakers' kubeconfigs come with their
	// ServiceAccounts (installRBAC).
	return writeKubeconfig(l.NodeKubeconfig, l.APIServer, "", l.caFile, l.token)
}

// writeKubeconfig writes a kubeconfig for server; serverName, when set, is
// the name checked against the server's certificate.
func writeKubeconfig(path, server, serverName, caFile, token string) error {
	tlsName := ""
	if serverName != "" {
		tlsName = "\n    tls-server-name: " + serverName
	}
	data := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: portico-lab
  cluster:
    server: %s
    certificate-authority: %s%s
users:
- name: lab-admin
  user:
    token: %s
contexts:
- name: portico-lab
  context:
    cluster: portico-lab
    user: lab-admin
    namespace: default
current-context: portico-lab
`, server, caFile, tlsName, token)
	return os.WriteFile(path, []byte(data), 0o600)
}

// StopAPIServer stops kube-apiserver (etcd keeps running), as an outage.
func (l *Lab) StopAPIServer() {
	l.Proc("kube-apiserver").stop(10 * time.Second)
}

// StartAPIServer starts kube-apiserver again after StopAPIServer and waits
// until it is ready.
func (l *Lab) StartAPIServer(ctx context.Context) error {
	p := l.Proc("kube-apiserver")
	if err := l.launch(p); err != nil {
		return err
	}
	timeout := 90 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	return l.waitAPIServer(timeout, l.Proc("etcd"))
}

// restConfig is a client configuration for the API server in ctlNS.
func restConfig(server, token string, ca []byte, ctlNS string) *rest.Config {
	return &rest.Config{
		Host: server, BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
		Dial:            DialIn(ctlNS),
		QPS:             500, Burst: 1000,
	}
}
