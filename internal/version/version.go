// Package version holds the build's version string, set at link time by the Makefile.
package version

// Version is overwritten with -ldflags "-X github.com/portico-lb/portico/internal/version.Version=...".
var Version = "dev"
