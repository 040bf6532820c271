package main

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// testMeta is the metadata of the test images.
var testMeta = metadata{
	version: "v1.2.3", revision: "0123456789abcdef0123456789abcdef01234567",
	source: defaultSource, licenses: "Apache-2.0",
	created: time.Date(2026, 11, 27, 21, 39, 59, 0, time.UTC),
}

// TestImages builds both programs as `make image` does, assembles and
// writes their images, reads the tarballs back and checks config and files.
func TestImages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // a cold build takes a while
	defer cancel()
	dir := t.TempDir()
	bins, err := buildBinaries(ctx, runtime.GOARCH, filepath.Join(dir, "bin"), programs)
	if err != nil {
		t.Fatal(err)
	}
	certs := []byte("-----BEGIN CERTIFICATE-----\ntest bundle\n-----END CERTIFICATE-----\n")

	for _, p := range programs {
		t.Run(p.name, func(t *testing.T) {
			binary, err := os.ReadFile(bins[p.name])
			if err != nil {
				t.Fatal(err)
			}
			checkStatic(t, bins[p.name])
			if runtime.GOOS == "linux" {
				if got := portsFromHelp(t, ctx, bins[p.name]); !slices.Equal(got, p.ports) {
					t.Errorf("ports of the address flags' defaults (--help): %v; the image exposes %v", got, p.ports)
				}
			}

			img, err := newImage(p, binary, certs, runtime.GOARCH, testMeta)
			if err != nil {
				t.Fatal(err)
			}
			// The same inputs make the same image.
			again, err := newImage(p, binary, certs, runtime.GOARCH, testMeta)
			if err != nil {
				t.Fatal(err)
			}
			if d1, d2 := digest(t, img), digest(t, again); d1 != d2 {
				t.Errorf("two builds from the same inputs: digests %s and %s", d1, d2)
			}

			file := filepath.Join(dir, p.name+"-image.tar")
			tags := []string{"eventproc/" + p.name + ":v1.2.3", "eventproc/" + p.name + ":latest"}
			var refs []name.Reference
			for _, s := range tags {
				refs = append(refs, must(name.NewTag(s)))
			}
			if err := writeImage(file, refs, img); err != nil {
				t.Fatal(err)
			}
			for _, s := range tags {
				tag := must(name.NewTag(s))
				loaded, err := tarball.ImageFromPath(file, &tag)
				if err != nil {
					t.Fatalf("reading %s back: %v", s, err)
				}
				if got, want := digest(t, loaded), digest(t, img); got != want {
					t.Errorf("%s read back: digest %s, want %s", s, got, want)
				}
			}
			loaded, err := tarball.ImageFromPath(file, nil) // as crane push reads it
			if err != nil {
				t.Fatalf("reading the tarball back without a tag: %v", err)
			}
			checkConfig(t, p, loaded)
			checkFiles(t, p, loaded, binary, certs)
		})
	}
}

func checkConfig(t *testing.T, p program, img v1.Image) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	if !cf.Created.Equal(testMeta.created) {
		t.Errorf("created %v, want %v", cf.Created, testMeta.created)
	}
	c := cf.Config
	if want := []string{"/usr/local/bin/" + p.name}; !slices.Equal(c.Entrypoint, want) || len(c.Cmd) != 0 {
		t.Errorf("entrypoint %q, cmd %q; want %q and no cmd", c.Entrypoint, c.Cmd, want)
	}
	if c.User != "65532" {
		t.Errorf("user %q, want 65532", c.User)
	}
	if c.WorkingDir != "/" {
		t.Errorf("working dir %q, want /", c.WorkingDir)
	}
	if want := []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}; !slices.Equal(c.Env, want) {
		t.Errorf("env %q, want %q", c.Env, want)
	}
	if got := slices.Sorted(maps.Keys(c.ExposedPorts)); !slices.Equal(got, p.ports) {
		t.Errorf("exposed ports %v, want %v", got, p.ports)
	}
	want := map[string]string{
		"org.opencontainers.image.title":       p.name,
		"org.opencontainers.image.description": p.about,
		"org.opencontainers.image.source":      "https://github.com/eventproc/eventproc",
		"org.opencontainers.image.revision":    testMeta.revision,
		"org.opencontainers.image.version":     "v1.2.3",
		"org.opencontainers.image.created":     "2026-11-27T21:39:59Z",
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
	if !maps.Equal(c.Labels, want) {
		t.Errorf("labels %v, want %v", c.Labels, want)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 2 || len(cf.History) != 2 {
		t.Errorf("%d layers, %d history entries; want 2 and 2", len(m.Layers), len(cf.History))
	}
}

// file is one entry of an image's file system.
type file struct {
	hdr  *tar.Header
	data []byte
}

func checkFiles(t *testing.T, p program, img v1.Image, binary, certs []byte) {
	t.Helper()
	files := imageFiles(t, img)
	bin := files["usr/local/bin/"+p.name]
	switch {
	case bin == nil:
		t.Fatalf("no usr/local/bin/%s in the image; files: %v", p.name, slices.Sorted(maps.Keys(files)))
	case sha256.Sum256(bin.data) != sha256.Sum256(binary):
		t.Errorf("usr/local/bin/%s: SHA-256 %x, want the built binary's %x", p.name, sha256.Sum256(bin.data), sha256.Sum256(binary))
	case bin.hdr.Mode != 0o755 || bin.hdr.Uid != 0:
		t.Errorf("usr/local/bin/%s: mode %o, owner %d; want 755, root", p.name, bin.hdr.Mode, bin.hdr.Uid)
	}
	for path, want := range map[string]string{
		"etc/passwd":                        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
		"etc/group":                         "nonroot:x:65532:\n",
		"etc/ssl/certs/ca-certificates.crt": string(certs),
	} {
		if f := files[path]; f == nil || !strings.Contains(string(f.data), want) {
			t.Errorf("%s does not hold %q", path, want)
		}
	}
	if h := files["home/nonroot/"]; h == nil || h.hdr.Uid != userID || h.hdr.Typeflag != tar.TypeDir {
		t.Errorf("home/nonroot/: want a directory of uid %d", userID)
	}
	for path, f := range files {
		if !f.hdr.ModTime.Equal(testMeta.created) {
			t.Errorf("%s: modified %v, want %v (reproducible builds)", path, f.hdr.ModTime, testMeta.created)
		}
	}
}

// imageFiles reads every layer of img, the later over the earlier.
func imageFiles(t *testing.T, img v1.Image) map[string]*file {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string]*file)
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = &file{h, data}
		}
		rc.Close()
	}
	return files
}

// checkStatic fails unless the binary at path is statically linked: no
// dynamic loader, so it runs on an empty base.
func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked (%v)", path, prog.Type)
		}
	}
}

// addrFlags are the listen address flags of each program, as --help shows them.
var addrFlags = map[string][]string{
	"eventproc": {"--http-addr ADDR", "--grpc-addr ADDR"},
	"proc":      {"-addr address"},
}

// portsFromHelp runs the binary with --help and returns the ports of the
// defaults of its address flags, as PORT/tcp.
func portsFromHelp(t *testing.T, ctx context.Context, binary string) []string {
	t.Helper()
	out, err := exec.CommandContext(ctx, binary, "--help").Output()
	if err != nil {
		t.Fatalf("%s --help: %v", binary, err)
	}
	help := strings.Join(strings.Fields(string(out)), " ")
	var ports []string
	for _, f := range addrFlags[filepath.Base(binary)] {
		m := regexp.MustCompile(regexp.QuoteMeta(f) + ` .*?default "[^"]*:(\d+)"`).FindStringSubmatch(help)
		if m == nil {
			t.Fatalf("%s --help: no default for %s in %q", binary, f, help)
		}
		ports = append(ports, m[1]+"/tcp")
	}
	return slices.Sorted(slices.Values(ports))
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestMetadata checks the labels' values from flags and SOURCE_DATE_EPOCH,
// which need no git.
func TestMetadata(t *testing.T) {
	for _, tc := range []struct {
		epoch, wantErr string
		want           time.Time
	}{
		{epoch: "1764279599", want: time.Date(2025, 11, 27, 21, 39, 59, 0, time.UTC)},
		{epoch: " 0 ", want: time.Unix(0, 0).UTC()},
		{epoch: "yesterday", wantErr: `SOURCE_DATE_EPOCH "yesterday"`},
		{epoch: "-1", wantErr: `SOURCE_DATE_EPOCH "-1"`},
	} {
		m := metadata{version: "v1", revision: "abc"}
		err := m.fill(t.Context(), func(k string) string {
			if k == "SOURCE_DATE_EPOCH" {
				return tc.epoch
			}
			return ""
		})
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("epoch %q: error %v, want one with %q", tc.epoch, err, tc.wantErr)
		case tc.wantErr == "" && err != nil:
			t.Errorf("epoch %q: %v", tc.epoch, err)
		case tc.wantErr == "" && !m.created.Equal(tc.want):
			t.Errorf("epoch %q: created %v, want %v", tc.epoch, m.created, tc.want)
		}
	}
	labels := metadata{}.labels(programs[0])
	if _, ok := labels["org.opencontainers.image.licenses"]; ok {
		t.Errorf("labels without a license: %v; want no licenses label", labels)
	}
}

// TestDockerfileMatches checks that the Dockerfile builds as `make image`
// does: the same go build flags, user, ports and user database.
func TestDockerfileMatches(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	var flags []string
	for _, f := range buildFlags {
		if k, v, ok := strings.Cut(f, "="); ok && strings.Contains(v, " ") {
			f = k + "='" + v + "'"
		}
		flags = append(flags, f)
	}
	want := []string{
		"CGO_ENABLED=0 GOOS=linux GOARCH=$TARGETARCH go build " + strings.Join(flags, " "),
		"USER 65532", "WORKDIR /",
		"ENV PATH=/usr/local/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
	}
	for _, line := range strings.SplitAfter(strings.TrimSpace(passwd+group), "\n") {
		want = append(want, strings.TrimSuffix(line, "\n")+`\n`)
	}
	for _, p := range programs {
		want = append(want,
			"EXPOSE "+strings.Join(p.ports, " "),
			`ENTRYPOINT ["/usr/local/bin/`+p.name+`"]`,
			"org.opencontainers.image.title="+p.name)
	}
	for _, w := range want {
		if !strings.Contains(df, w) {
			t.Errorf("the Dockerfile does not say %q", w)
		}
	}
	if !strings.Contains(df, "FROM scratch AS base") {
		t.Error("the Dockerfile's images should start FROM scratch AS base")
	}
}
