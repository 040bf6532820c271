package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The non-root user the images run as, and where things are in them.
const (
	userID   = 65532
	userName = "nonroot"
	userHome = "/home/nonroot"
	binDir   = "/usr/local/bin"
	caFile   = "/etc/ssl/certs/ca-certificates.crt"
)

// passwd and group are the images' user database: root, and the user
// the programs run as, who cannot log in.
var (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		userName + ":x:" + strconv.Itoa(userID) + ":" + strconv.Itoa(userID) + ":" + userName + ":" + userHome + ":/sbin/nologin\n"
	group = "root:x:0:\n" + userName + ":x:" + strconv.Itoa(userID) + ":\n"
)

// entry is one file or directory of a layer; a nil data means a directory.
type entry struct {
	path string // absolute
	mode int64
	uid  int
	data []byte
}

// newImage assembles p's image on an empty base from binary and the CA
// bundle certs, for linux/goarch, labelled from meta.
func newImage(p program, binary, certs []byte, goarch string, meta metadata) (v1.Image, error) {
	base, err := layer(meta.created, []entry{
		{path: "/etc", mode: 0o755},
		{path: "/etc/passwd", mode: 0o644, data: []byte(passwd)},
		{path: "/etc/group", mode: 0o644, data: []byte(group)},
		{path: "/etc/ssl", mode: 0o755},
		{path: "/etc/ssl/certs", mode: 0o755},
		{path: caFile, mode: 0o644, data: certs},
		{path: "/home", mode: 0o755},
		{path: userHome, mode: 0o700, uid: userID},
	})
	if err != nil {
		return nil, err
	}
	entrypoint := path.Join(binDir, p.name)
	app, err := layer(meta.created, []entry{
		{path: "/usr", mode: 0o755},
		{path: "/usr/local", mode: 0o755},
		{path: binDir, mode: 0o755},
		{path: entrypoint, mode: 0o755, data: binary},
	})
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: meta.created}
	img, err := mutate.Append(empty.Image,
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "imagebuild: passwd, group, CA certificates",
			Comment: "user " + userName + " (" + strconv.Itoa(userID) + ")"}},
		mutate.Addendum{Layer: app, History: v1.History{Created: created, CreatedBy: "imagebuild: " + entrypoint,
			Comment: fmt.Sprintf("CGO_ENABLED=0 GOOS=linux GOARCH=%s go build %v %s", goarch, buildFlags, p.pkg)}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", goarch, created
	ports := make(map[string]struct{}, len(p.ports))
	for _, port := range p.ports {
		ports[port] = struct{}{}
	}
	cf.Config = v1.Config{
		Entrypoint:   []string{entrypoint},
		User:         strconv.Itoa(userID),
		WorkingDir:   "/",
		Env:          []string{"PATH=" + binDir, "SSL_CERT_FILE=" + caFile},
		ExposedPorts: ports,
		Labels:       meta.labels(p),
	}
	return mutate.ConfigFile(img, cf)
}

// layer makes a gzip-compressed layer of entries, in their order,
// owned by root unless they say otherwise, with modification time mtime.
func layer(mtime time.Time, entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.path[1:], Mode: e.mode, Uid: e.uid, Gid: e.uid,
			ModTime: mtime, Format: tar.FormatPAX,
		}
		if e.data == nil {
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithCompressedCaching)
}

// writeImage writes img as a `docker save` tarball to file, tagged with refs.
func writeImage(file string, refs []name.Reference, img v1.Image) error {
	tags := make(map[name.Reference]v1.Image, len(refs))
	for _, r := range refs {
		tags[r] = img
	}
	return tarball.MultiRefWriteToFile(file, tags)
}
