// Package e2e is sessiond's end-to-end suite: it drives a docker compose
// cluster from outside, over HTTPS (trusting SESSIOND_CA, sending
// SESSIOND_TOKEN) and the docker / docker compose CLIs, while it kills,
// partitions, restarts and grows the cluster.
//
// The tests carry the build tag e2e and expect a running cluster; run them
// with scripts/e2e-compose.sh, which builds the image, starts its own compose
// project on its own ports, runs
//
//	go test -tags e2e -count=1 -timeout 12m -v ./e2e
//
// and always removes the project afterwards.
package e2e
