package e2etest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/deploy"
	"github.com/portico-lb/portico/e2etest/lab"
)

// TestLabRunsTheImages runs Portico from its container images rather than
// from bin/: it builds both images the way `make images` does (static
// binaries, Dockerfile.controller and Dockerfile.speaker, a private Docker
// daemon with vfs storage, no bridge, no iptables, no IP forwarding, nothing
// pulled), unpacks each image's filesystem with `docker export`, and starts a
// small lab of its own (two nodes, beside the suite's idle lab) whose
// controller and speakers are the images' entrypoints. A Service must get an
// IP, exactly one node must answer ARP for it and the client's HTTP request
// must reach that node; and every Portico process of that lab must be running
// a binary from the unpacked filesystems.
func TestLabRunsTheImages(t *testing.T) {
	for _, tool := range []string{"docker", "dockerd"} {
		if _, err := exec.LookPath(tool); err != nil {
			requireTool(t, deploy.ErrNoDocker)
		}
	}
	ctx := testCtx(t, 10*time.Minute)
	root := theLab.Root
	work := t.TempDir()

	o := deploy.ImageOptions{Root: root, Context: filepath.Join(work, "context"), Tag: "lab",
		Version: "lab-image-test", Revision: "lab"}
	if err := deploy.BuildBinaries(ctx, root, o.Context, o.Version); err != nil {
		t.Fatal(err)
	}
	startCtx, cancelStart := context.WithTimeout(ctx, time.Minute)
	d, err := deploy.StartDocker(startCtx, work, filepath.Join(work, "docker-data"))
	cancelStart()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	if err := d.BuildImages(ctx, o); err != nil {
		t.Fatal(err)
	}
	// Each image's filesystem is unpacked into rootfs-COMPONENT; the lab's
	// BinDir links to the entrypoints there.
	binDir := filepath.Join(work, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range deploy.Components {
		raw, err := d.Cmd(ctx, "image", "inspect", "--format", "{{json .Config.Entrypoint}}", o.Image(c))
		if err != nil {
			t.Fatal(err)
		}
		var entry []string
		if err := json.Unmarshal(raw, &entry); err != nil {
			t.Fatalf("entrypoint of %s: %v: %s", o.Image(c), err, raw)
		}
		if want := []string{"/portico-" + c}; !slices.Equal(entry, want) {
			t.Fatalf("%s has entrypoint %q; the lab runs %q", o.Image(c), entry, want)
		}
		rootfs := filepath.Join(work, "rootfs-"+c)
		if err := d.ExportFilesystem(ctx, o.Image(c), rootfs); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(rootfs, entry[0]), filepath.Join(binDir, "portico-"+c)); err != nil {
			t.Fatal(err)
		}
	}
	d.Stop()

	l, err := lab.Up(lab.Opts{Name: fmt.Sprintf("ptc-i%d", os.Getpid()), Nodes: 2, BinDir: binDir,
		NoSignalHandler: true, Progress: func(s string) { t.Logf("image lab: %s", s) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("image lab down: %v", err)
		}
	})
	procs := map[string]string{"controller": "controller"}
	for _, n := range l.Nodes {
		procs["speaker-"+n.Name] = "speaker"
	}
	for name, c := range procs {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", l.Proc(name).PID))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := filepath.Join(work, "rootfs-"+c, "portico-"+c); exe != want {
			t.Errorf("%s runs %s, not the image's %s", name, exe, want)
		}
	}

	autoAssign := true
	poolObj := &porticov1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "images"},
		Spec: porticov1.IPAddressPoolSpec{AutoAssign: &autoAssign, Addresses: []porticov1.AddressEntry{lab.PoolV4}}}
	adv := &porticov1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "images"}}
	adv.Spec.IPAddressPools = []string{"images"}
	if err := l.Client.Create(ctx, poolObj); err != nil {
		t.Fatal(err)
	}
	if err := l.Client.Create(ctx, adv); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateService(ctx, "web", lab.ServiceOpts{}); err != nil {
		t.Fatal(err)
	}
	ip, err := l.WaitIngress(ctx, "web")
	if err != nil {
		t.Fatalf("%v (logs in %s)", err, l.RunDir)
	}
	var last string
	for {
		n, err := l.Announcer(ip)
		if err == nil {
			got, herr := l.HTTPGet(ctx, ip, 2*time.Second)
			if herr == nil && got == n.Name {
				t.Logf("%s: %s (MAC %s) answers ARP and HTTP, run from the images", ip, n.Name, n.MAC)
				return
			}
			last = fmt.Sprintf("%s answers ARP but HTTP gave %q (%v)", n.Name, got, herr)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s is not answered: %s (logs in %s)", ip, last, l.RunDir)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
