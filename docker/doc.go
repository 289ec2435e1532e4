// Package docker holds no runtime code: it exists so that `go test ./docker/`
// can statically check Dockerfile.cuda, the compose file, the Prometheus
// configuration and the Grafana dashboard against the metric names and the
// metrics port that the trainer exports.
package docker
