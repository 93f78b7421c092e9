// Command images builds the controller and speaker images (`make images`): the
// static binaries with the host's Go, then Dockerfile.controller and
// Dockerfile.speaker with Docker, and saves both images to OUT/*.tar (load them
// with `docker load -i`). It uses the Docker daemon of DOCKER_HOST or the
// system's when one answers; otherwise it starts a private one (vfs storage in
// bin/docker, no bridge, no iptables, no IP forwarding) and stops it by its PID file when done.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/portico-lb/portico/deploy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "images: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := deploy.Root()
	if err != nil {
		return err
	}
	o := deploy.ImageOptions{Root: root}
	flag.StringVar(&o.Prefix, "prefix", "", "image name prefix (registry and path), e.g. registry.example/portico-lb")
	flag.StringVar(&o.Tag, "tag", "dev", "image tag")
	flag.StringVar(&o.Version, "version", "dev", "version compiled into the binaries and in the image label")
	flag.StringVar(&o.Revision, "revision", "unknown", "source revision for the image label")
	out := flag.String("out", filepath.Join(root, "bin", "images"), "folder for the saved images (portico-COMPONENT.tar); empty saves none")
	dataRoot := flag.String("data-root", filepath.Join(root, "bin", "docker"), "data folder of the private Docker daemon, if one is started")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()

	work, err := os.MkdirTemp("", "portico-images-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	o.Context = filepath.Join(work, "context")
	start := time.Now()
	if err := deploy.BuildBinaries(ctx, root, o.Context, o.Version); err != nil {
		return err
	}
	fmt.Printf("images: built the static binaries in %.1f s\n", time.Since(start).Seconds())

	d := deploy.UseDocker(ctx)
	if d == nil {
		startCtx, cancelStart := context.WithTimeout(ctx, time.Minute)
		d, err = deploy.StartDocker(startCtx, work, *dataRoot)
		cancelStart()
		if err != nil {
			return err
		}
		fmt.Printf("images: started a private Docker daemon (data in %s)\n", *dataRoot)
		defer d.Stop()
	}
	start = time.Now()
	if err := d.BuildImages(ctx, o); err != nil {
		return err
	}
	fmt.Printf("images: built %s and %s in %.1f s\n", o.Image("controller"), o.Image("speaker"), time.Since(start).Seconds())
	for _, c := range deploy.Components {
		v, err := d.Cmd(ctx, "run", "--rm", "--network", "none", o.Image(c), "--version")
		if err != nil {
			return err
		}
		fmt.Printf("images: %s --version: %s", o.Image(c), v)
		if *out == "" {
			continue
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		tar := filepath.Join(*out, "portico-"+c+".tar")
		if _, err := d.Cmd(ctx, "save", "-o", tar, o.Image(c)); err != nil {
			return err
		}
		fmt.Printf("images: saved %s\n", tar)
	}
	return nil
}
