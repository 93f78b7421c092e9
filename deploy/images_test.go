package deploy_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portico-lb/portico/deploy"
)

// TestImagesBuildAndRun builds both images from their Dockerfiles with a
// private Docker daemon (nothing pulled: the bases are scratch) and runs each
// image's binary with --version. Bounded to 5 minutes: a Docker daemon that
// cannot start, or a build that hangs, fails with what went wrong.
func TestImagesBuildAndRun(t *testing.T) {
	for _, tool := range []string{"docker", "dockerd"} {
		if _, err := exec.LookPath(tool); err != nil {
			need(t, deploy.ErrNoDocker)
		}
	}
	t.Parallel()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	dir := t.TempDir()
	startCtx, cancelStart := context.WithTimeout(ctx, time.Minute)
	d, err := deploy.StartDocker(startCtx, dir, filepath.Join(dir, "data"))
	cancelStart()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	t.Logf("Docker daemon answering after %.1f s", time.Since(start).Seconds())

	o := deploy.ImageOptions{Root: root(t), Context: binaries(t), Prefix: "test.invalid/portico-lb", Tag: "test",
		Version: binariesVersion, Revision: "0123abc", Source: "https://example.com/portico"}
	built := time.Now()
	if err := d.BuildImages(ctx, o); err != nil {
		t.Fatal(err)
	}
	t.Logf("both images built in %.1f s", time.Since(built).Seconds())

	wantUser := map[string]string{"controller": "65532:65532", "speaker": "0:0"}
	for _, c := range deploy.Components {
		image := o.Image(c)
		out, err := d.Cmd(ctx, "run", "--rm", "--network", "none", image, "--version")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.TrimSpace(string(out)), "portico-"+c+" "+binariesVersion; got != want {
			t.Errorf("%s --version printed %q, want %q", image, got, want)
		}
		raw, err := d.Cmd(ctx, "image", "inspect", image)
		if err != nil {
			t.Fatal(err)
		}
		var info []struct {
			Size   int64
			Config struct {
				User       string
				Entrypoint []string
				Labels     map[string]string
			}
		}
		if err := json.Unmarshal(raw, &info); err != nil || len(info) != 1 {
			t.Fatalf("docker image inspect %s: %v: %s", image, err, raw)
		}
		cfg := info[0].Config
		if cfg.User != wantUser[c] {
			t.Errorf("%s runs as user %q, want %q", image, cfg.User, wantUser[c])
		}
		if len(cfg.Entrypoint) != 1 || cfg.Entrypoint[0] != "/portico-"+c {
			t.Errorf("%s entrypoint %v", image, cfg.Entrypoint)
		}
		for label, want := range map[string]string{
			"org.opencontainers.image.title":    "portico-" + c,
			"org.opencontainers.image.version":  binariesVersion,
			"org.opencontainers.image.revision": "0123abc",
			"org.opencontainers.image.source":   "https://example.com/portico",
		} {
			if cfg.Labels[label] != want {
				t.Errorf("%s label %s = %q, want %q", image, label, cfg.Labels[label], want)
			}
		}
		t.Logf("%s: %d MB, user %s", image, info[0].Size>>20, cfg.User)
	}
	t.Logf("image test took %.1f s", time.Since(start).Seconds())
}
