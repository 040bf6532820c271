package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
)

// program is one binary of the repository and what its image exposes.
type program struct {
	name  string   // binary, image name and title
	pkg   string   // import path
	ports []string // exposed ports, as PORT/tcp
	about string   // the description label
}

// programs are the images `make image` builds. The ports are the defaults
// of the programs' address flags (checked by TestImages against --help).
var programs = []program{
	{
		name: "eventproc", pkg: "github.com/eventproc/eventproc/eventproc",
		ports: []string{"8080/tcp", "8081/tcp"},
		about: "eventproc event sink: HTTP/JSON API on 8080, gRPC API on 8081",
	},
	{
		name: "proc", pkg: "github.com/eventproc/eventproc/proc",
		ports: []string{"9090/tcp"},
		about: "eventproc echo processor: event.v1.ProcessorService on 9090",
	},
}

// defaultCACerts is where Debian keeps the CA bundle the images get.
const defaultCACerts = "/etc/ssl/certs/ca-certificates.crt"

// run parses args, builds every program and writes its image; it reports
// each image on stdout.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("imagebuild", flag.ContinueOnError)
	out := fs.String("out", "bin", "`dir`ectory of the images (DIR/NAME-image.tar) and binaries (DIR/linux_ARCH/NAME)")
	goarch := fs.String("goarch", "", "target `arch`itecture (default $GOARCH, else the build machine's)")
	repo := fs.String("repo", "eventproc", "images are named `PREFIX`/NAME")
	caCerts := fs.String("ca-certs", defaultCACerts, "CA certificate bundle `file` copied into the images")
	var meta metadata
	fs.StringVar(&meta.version, "version", "", "org.opencontainers.image.version and tag (default: git describe --tags --always --dirty)")
	fs.StringVar(&meta.revision, "revision", "", "org.opencontainers.image.revision (default: git rev-parse HEAD)")
	fs.StringVar(&meta.source, "source", defaultSource, "org.opencontainers.image.source")
	fs.StringVar(&meta.licenses, "licenses", "", "org.opencontainers.image.licenses, an SPDX expression; omitted when empty")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *goarch == "" {
		*goarch = getenv("GOARCH")
	}
	if *goarch == "" {
		*goarch = runtime.GOARCH
	}
	if err := meta.fill(ctx, getenv); err != nil {
		return err
	}
	certs, err := os.ReadFile(*caCerts)
	if err != nil {
		return fmt.Errorf("CA certificates: %w", err)
	}

	binDir := filepath.Join(*out, "linux_"+*goarch)
	fmt.Fprintf(stdout, "building %d binaries for linux/%s into %s (CGO_ENABLED=0 go build %v)\n",
		len(programs), *goarch, binDir, buildFlags)
	bins, err := buildBinaries(ctx, *goarch, binDir, programs)
	if err != nil {
		return err
	}
	for _, p := range programs {
		binary, err := os.ReadFile(bins[p.name])
		if err != nil {
			return err
		}
		img, err := newImage(p, binary, certs, *goarch, meta)
		if err != nil {
			return fmt.Errorf("%s image: %w", p.name, err)
		}
		var refs []name.Reference
		for _, tag := range []string{meta.version, "latest"} {
			ref, err := name.NewTag(*repo + "/" + p.name + ":" + tag)
			if err != nil {
				return fmt.Errorf("%s image name: %w", p.name, err)
			}
			refs = append(refs, ref)
		}
		path := filepath.Join(*out, p.name+"-image.tar")
		if err := writeImage(path, refs, img); err != nil {
			return fmt.Errorf("%s image: %w", p.name, err)
		}
		digest, err := img.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s/%s:{%s,latest} linux/%s %s\n", path, *repo, p.name, meta.version, *goarch, digest)
	}
	return nil
}
