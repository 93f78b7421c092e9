package deploy

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tarOf builds a tar stream of entries (name -> content; a name ending in /
// is a folder, content "->TARGET" a symbolic link).
func tarOf(t *testing.T, names []string, entries map[string]string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for _, name := range names {
		body := entries[name]
		h := &tar.Header{Name: name, Mode: 0o755, Typeflag: tar.TypeReg, Size: int64(len(body))}
		switch {
		case strings.HasSuffix(name, "/"):
			h.Typeflag, h.Size = tar.TypeDir, 0
		case strings.HasPrefix(body, "->"):
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, body[2:], 0
		}
		if err := w.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := w.Write([]byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// TestUntarUnpacksAFilesystem unpacks what docker export writes for a scratch
// image (the binary, Docker's /etc files and an /etc/mtab link).
func TestUntarUnpacksAFilesystem(t *testing.T) {
	dir := t.TempDir()
	names := []string{".dockerenv", "etc/", "etc/hostname", "etc/mtab", "portico-speaker"}
	entries := map[string]string{"etc/mtab": "->/proc/mounts", "portico-speaker": "binary"}
	if err := untar(tarOf(t, names, entries), dir); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "portico-speaker"))
	if err != nil || string(got) != "binary" {
		t.Fatalf("portico-speaker: %q, %v", got, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "portico-speaker")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("portico-speaker is not executable: %v %v", fi.Mode(), err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "etc", "mtab")); err != nil || target != "/proc/mounts" {
		t.Errorf("etc/mtab links to %q (%v)", target, err)
	}
}

// TestUntarRefusesEscapes refuses an entry that would land outside the folder.
func TestUntarRefusesEscapes(t *testing.T) {
	dir := t.TempDir()
	err := untar(tarOf(t, []string{"../escaped"}, map[string]string{"../escaped": "x"}), filepath.Join(dir, "root"))
	if err == nil || !strings.Contains(err.Error(), "leaves the folder") {
		t.Fatalf("error %v, want one saying the entry leaves the folder", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "escaped")); err == nil {
		t.Error("the entry was written outside the folder")
	}
}
