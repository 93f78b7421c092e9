package deploy

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Components are the binaries that get an image each (Dockerfile.COMPONENT,
// image portico-COMPONENT, binary bin/portico-COMPONENT).
var Components = []string{"controller", "speaker"}

// ErrNoDocker says Docker is not installed.
var ErrNoDocker = errors.New("docker or dockerd not found: run hack/setup.sh (installs Debian's docker.io) or apt-get install docker.io")

// Docker is a Docker daemon the images are built with: one this package
// started (Stop stops it) or one that was already running.
type Docker struct {
	// Host is the DOCKER_HOST of the daemon.
	Host    string
	cli     string
	dir     string // the started daemon's folder: socket, pid file, log, exec root
	pidFile string
	proc    *os.Process
	exited  chan struct{}
}

// UseDocker returns the daemon named by DOCKER_HOST, or the system one, when it
// answers; it returns nil when neither does.
func UseDocker(ctx context.Context) *Docker {
	cli, err := exec.LookPath("docker")
	if err != nil {
		return nil
	}
	for _, host := range []string{os.Getenv("DOCKER_HOST"), "unix:///var/run/docker.sock"} {
		if host == "" {
			continue
		}
		d := &Docker{Host: host, cli: cli}
		if d.ping(ctx) == nil {
			return d
		}
	}
	return nil
}

// StartDocker starts a private Docker daemon: vfs storage in dataRoot (kept,
// so images stay there for the next start), socket, pid file, log and exec
// root in dir, no bridge, no iptables, no IP forwarding, so it changes nothing
// on the host's network and cannot clash with another daemon. It waits until the daemon
// answers, at most until ctx ends; on failure the error carries the end of the
// daemon's log.
func StartDocker(ctx context.Context, dir, dataRoot string) (*Docker, error) {
	cli, err := exec.LookPath("docker")
	if err != nil {
		return nil, ErrNoDocker
	}
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		return nil, ErrNoDocker
	}
	if err := os.MkdirAll(dataRoot, 0o700); err != nil {
		return nil, err
	}
	d := &Docker{cli: cli, dir: dir, pidFile: filepath.Join(dir, "dockerd.pid"), exited: make(chan struct{})}
	d.Host = "unix://" + filepath.Join(dir, "docker.sock")
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(dockerd,
		// --ip-forward=false: dockerd otherwise turns on the host's
		// net.ipv4.ip_forward, even with no bridge.
		"--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false",
		"--data-root", dataRoot, "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", d.pidFile, "--host", d.Host)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C at the terminal reaches us, and we stop it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting dockerd: %w", err)
	}
	d.proc = cmd.Process
	go func() { _ = cmd.Wait(); close(d.exited) }()
	for {
		if d.ping(ctx) == nil {
			return d, nil
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("the Docker daemon could not start on this machine (dockerd exited); its log ends:\n%s", d.logTail())
		case <-ctx.Done():
			d.Stop()
			return nil, fmt.Errorf("the Docker daemon did not answer in time (%v); its log ends:\n%s", ctx.Err(), d.logTail())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (d *Docker) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := d.Cmd(ctx, "version", "--format", "{{.Server.Version}}")
	return err
}

func (d *Docker) logTail() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// Stop stops a daemon StartDocker started, by the PID in its pid file (TERM,
// then KILL after 20 s); it does nothing to a daemon it did not start.
func (d *Docker) Stop() {
	if d.proc == nil {
		return
	}
	pid := d.proc.Pid
	if b, err := os.ReadFile(d.pidFile); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p == d.proc.Pid {
			pid = p
		}
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-d.exited
	}
	d.proc = nil
}

// Cmd runs the docker CLI against the daemon and returns its output. The
// classic builder is used: it is what Debian's docker.io has without buildx.
func (d *Docker) Cmd(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, d.cli, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host, "DOCKER_BUILDKIT=0", "DOCKER_CLI_HINTS=false")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()+"\n"+tail(stdout.String(), 20)))
	}
	return stdout.Bytes(), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// BuildBinaries builds the static binaries the images hold into
// dir/bin/portico-COMPONENT with the host's Go (CGO_ENABLED=0, stripped), with
// version as internal/version.Version.
func BuildBinaries(ctx context.Context, root, dir, version string) error {
	for _, c := range Components {
		cmd := exec.CommandContext(ctx, "go", "build",
			"-ldflags", "-s -w -X github.com/portico-lb/portico/internal/version.Version="+version,
			"-o", filepath.Join(dir, "bin", "portico-"+c), "./cmd/portico-"+c)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building portico-%s: %v: %s", c, err, out)
		}
	}
	return nil
}

// ImageOptions say what BuildImages tags and labels.
type ImageOptions struct {
	Root    string // repository root (the Dockerfiles)
	Context string // folder holding bin/portico-COMPONENT (BuildBinaries)
	// Image names are PREFIX/portico-COMPONENT:TAG, or portico-COMPONENT:TAG
	// without a prefix.
	Prefix, Tag string
	// Labels: org.opencontainers.image.version, .revision and .source.
	Version, Revision, Source string
}

// Image returns the name of a component's image.
func (o ImageOptions) Image(component string) string {
	name := "portico-" + component + ":" + o.Tag
	if o.Prefix != "" {
		name = strings.TrimSuffix(o.Prefix, "/") + "/" + name
	}
	return name
}

// BuildImages builds both images from their Dockerfiles, without network.
func (d *Docker) BuildImages(ctx context.Context, o ImageOptions) error {
	for _, c := range Components {
		args := []string{"build", "--network", "none", "--quiet",
			"-f", filepath.Join(o.Root, "Dockerfile."+c), "-t", o.Image(c),
			"--build-arg", "VERSION=" + o.Version, "--build-arg", "REVISION=" + o.Revision}
		if o.Source != "" {
			args = append(args, "--build-arg", "SOURCE="+o.Source)
		}
		if _, err := d.Cmd(ctx, append(args, o.Context)...); err != nil {
			return fmt.Errorf("building image %s: %w", o.Image(c), err)
		}
	}
	return nil
}

// ExportFilesystem unpacks the root filesystem of image into dir, as a
// container of the image sees it: it creates a container (never started),
// exports it with `docker export` and removes it. Folders, regular files and
// symbolic links are unpacked; an entry that would land outside dir is an
// error.
func (d *Docker) ExportFilesystem(ctx context.Context, image, dir string) error {
	id, err := d.Cmd(ctx, "create", "--network", "none", image)
	if err != nil {
		return err
	}
	container := strings.TrimSpace(string(id))
	defer func() { _, _ = d.Cmd(context.WithoutCancel(ctx), "rm", container) }()
	stream, err := d.Cmd(ctx, "export", container)
	if err != nil {
		return err
	}
	if err := untar(bytes.NewReader(stream), dir); err != nil {
		return fmt.Errorf("unpacking the filesystem of %s: %w", image, err)
	}
	return nil
}

func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(strings.TrimPrefix(h.Name, "/"))
		if !filepath.IsLocal(name) && name != "." {
			return fmt.Errorf("entry %q leaves the folder", h.Name)
		}
		path := filepath.Join(dir, name)
		mode := os.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(path, mode|0o700)
		case tar.TypeReg:
			err = writeFile(path, tr, mode)
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, path)
		}
		if err != nil {
			return err
		}
	}
}

func writeFile(path string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
