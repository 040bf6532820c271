// Command imagebuild builds the container images of eventproc (the sink)
// and proc (the echo processor) without a Docker daemon; `make image` runs
// it from the repository root.
//
// It works the way ko does: it compiles each program as a static Linux
// binary (CGO_ENABLED=0, the flags in [buildFlags]), then assembles the
// image with go-containerregistry on an empty base, from two layers:
//
//   - the base layer: /etc/passwd and /etc/group with the non-root user
//     nonroot (uid and gid 65532), its home directory, and the build
//     machine's CA certificates as /etc/ssl/certs/ca-certificates.crt;
//   - the program layer: the binary as /usr/local/bin/NAME.
//
// The config runs the binary as the entrypoint, as user 65532, in /, with
// the program's ports exposed and OCI labels (source, revision, version,
// title, created and, when given, licenses). Nothing in the image is
// written at run time, so it runs with a read-only root file system.
//
// Every timestamp (files, history, config) is the commit time, or
// SOURCE_DATE_EPOCH when set, so that building the same commit with the
// same Go version gives the same image digest.
//
// Each image is written as a tarball in the format of `docker save` (a
// manifest.json naming config and layers), which `docker load`, `podman
// load`, `kind load image-archive` and `crane push` accept. That format
// does not record media types: readers rebuild the manifest with Docker's
// (image manifest v2, schema 2). The images are made with those, so the
// digest printed is the one a registry shows after `crane push`
// (TestImages reads the tarball back and compares).
//
// Flags:
//
//	-out DIR         where images go (DIR/NAME-image.tar) and binaries
//	                 (DIR/linux_ARCH/NAME); default bin
//	-goarch ARCH     target architecture; default $GOARCH, else the build
//	                 machine's
//	-repo PREFIX     image names are PREFIX/NAME, tagged with the version
//	                 and latest; default eventproc
//	-ca-certs FILE   CA bundle to copy in; default
//	                 /etc/ssl/certs/ca-certificates.crt
//	-version V, -revision R, -source URL, -licenses SPDX
//	                 label values; version and revision default to what git
//	                 says (git describe --tags --always --dirty; git
//	                 rev-parse HEAD), licenses to none
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}
