package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"
)

// This file renders a kustomization the way `kubectl kustomize` does, for
// the features the manifests use and no more: resources (files or
// directories with a kustomization.yaml) and patches given by path, each a
// strategic merge patch whose kind and metadata.name pick its target.
// krusty (sigs.k8s.io/kustomize/api) would do all of kustomize, at the
// price of some forty more modules in go.mod for one test; a kustomization
// that uses anything else fails to decode here (unknown field), which is
// the signal to extend this renderer or switch to krusty.
// TestRenderMatchesKubectl compares the two when kubectl is installed.

// kustomization is the part of kustomize's Kustomization the renderer
// implements.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Patches    []struct {
		Path string `json:"path"`
	} `json:"patches"`
}

// object is one manifest, as decoded from YAML.
type object = map[string]any

// render returns the objects of the kustomization in dir.
func render(dir string) ([]object, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml: %w", dir, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		return nil, fmt.Errorf("%s/kustomization.yaml: %s %s, want kustomize.config.k8s.io/v1beta1 Kustomization", dir, k.APIVersion, k.Kind)
	}
	var objs []object
	for _, r := range k.Resources {
		path := filepath.Join(dir, r)
		var more []object
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			more, err = render(path)
			if err != nil {
				return nil, err
			}
		} else if more, err = readObjects(path); err != nil {
			return nil, err
		}
		objs = append(objs, more...)
	}
	for _, p := range k.Patches {
		patch, err := readObjects(filepath.Join(dir, p.Path))
		if err != nil {
			return nil, err
		}
		if len(patch) != 1 {
			return nil, fmt.Errorf("%s/%s: %d documents, want one patch", dir, p.Path, len(patch))
		}
		target := find(objs, kindOf(patch[0]), nameOf(patch[0]))
		if target == nil {
			return nil, fmt.Errorf("%s/%s: no %s %q to patch", dir, p.Path, kindOf(patch[0]), nameOf(patch[0]))
		}
		mergeMaps(target, patch[0])
	}
	return objs, nil
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// readObjects reads the YAML documents of file, rejecting duplicate keys.
func readObjects(file string) ([]object, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var objs []object
	for _, doc := range docSeparator.Split(string(b), -1) {
		j, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
			continue // an empty document
		}
		var o object
		if err := json.Unmarshal(j, &o); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		objs = append(objs, o)
	}
	return objs, nil
}

func kindOf(o object) string { s, _ := o["kind"].(string); return s }

func nameOf(o object) string {
	md, _ := o["metadata"].(map[string]any)
	s, _ := md["name"].(string)
	return s
}

func find(objs []object, kind, name string) object {
	for _, o := range objs {
		if kindOf(o) == kind && nameOf(o) == name {
			return o
		}
	}
	return nil
}

// mergeKeys are the strategic merge keys of the lists the patches touch,
// as the Kubernetes API declares them (patchMergeKey); other lists are
// replaced, as a strategic merge patch replaces lists without one.
var mergeKeys = map[string]string{
	"containers":     "name",
	"initContainers": "name",
	"env":            "name",
	"volumes":        "name",
	"volumeMounts":   "mountPath",
	"ports":          "containerPort",
}

// mergeMaps applies patch to dst as a strategic merge patch: maps merge,
// keyed lists merge by key, null deletes, everything else replaces.
func mergeMaps(dst, patch map[string]any) {
	for k, pv := range patch {
		switch pv := pv.(type) {
		case nil:
			delete(dst, k)
		case map[string]any:
			if dv, ok := dst[k].(map[string]any); ok {
				mergeMaps(dv, pv)
			} else {
				dst[k] = pv
			}
		case []any:
			dv, ok := dst[k].([]any)
			if key := mergeKeys[k]; ok && key != "" {
				dst[k] = mergeList(dv, pv, key)
			} else {
				dst[k] = pv
			}
		default:
			dst[k] = pv
		}
	}
}

// mergeList merges the elements of patch into dst by key, in kustomize's
// order: the patch's elements (merged into dst's of the same key) in their
// order, then dst's other elements.
func mergeList(dst, patch []any, key string) []any {
	var out []any
	used := make(map[int]bool)
	for _, pe := range patch {
		pm, _ := pe.(map[string]any)
		i := slices.IndexFunc(dst, func(de any) bool {
			dm, ok := de.(map[string]any)
			return ok && pm != nil && fmt.Sprint(dm[key]) == fmt.Sprint(pm[key])
		})
		if i < 0 {
			out = append(out, pe)
			continue
		}
		mergeMaps(dst[i].(map[string]any), pm)
		out = append(out, dst[i])
		used[i] = true
	}
	for i, de := range dst {
		if !used[i] {
			out = append(out, de)
		}
	}
	return out
}

// TestRenderMatchesKubectl renders every overlay with `kubectl kustomize`
// too, when kubectl is installed, and compares: the renderer must agree
// with kustomize on what these manifests mean.
func TestRenderMatchesKubectl(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed")
	}
	for _, dir := range []string{"base", "overlays/single", "overlays/scaled"} {
		out, err := exec.CommandContext(t.Context(), kubectl, "kustomize", dir).Output()
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, ee.Stderr)
		} else if err != nil {
			t.Fatalf("kubectl kustomize %s: %v", dir, err)
		}
		file := filepath.Join(t.TempDir(), "rendered.yaml")
		if err := os.WriteFile(file, out, 0o644); err != nil {
			t.Fatal(err)
		}
		want, err := readObjects(file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := render(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d objects, kubectl kustomize %d", dir, len(got), len(want))
		}
		for _, w := range want {
			g := find(got, kindOf(w), nameOf(w))
			if !reflect.DeepEqual(g, w) {
				gj, _ := json.MarshalIndent(g, "", " ")
				wj, _ := json.MarshalIndent(w, "", " ")
				t.Errorf("%s: %s %q:\n%s\nkubectl kustomize:\n%s", dir, kindOf(w), nameOf(w), gj, wj)
			}
		}
	}
}
