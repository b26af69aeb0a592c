// Package validate checks Gatehouse's deployment manifests offline: the Helm
// chart in charts/gatehouse, the kustomize tree in k8s/, skaffold.yaml, the
// Prometheus rules and the Grafana dashboards. The checks themselves are the
// tests of this package (go test ./...); this file and its siblings hold the
// helpers they share. Nothing here touches the network or a cluster.
package validate
