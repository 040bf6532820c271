// Package kubernetes holds eventproc's Kubernetes manifests: a kustomize
// base (base/) and the overlays single and scaled (overlays/), applied with
// `kubectl apply -k deploy/kubernetes/overlays/NAME`; docs/deploy.md
// explains them. The package has no code: its tests render every overlay,
// decode each manifest strictly into the k8s.io/api types, and check that
// the manifests agree with the programs (ports, probes, grace periods,
// routes) and with each other (selectors, scale targets).
package kubernetes
