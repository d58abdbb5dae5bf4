//go:build tools

// Package tools pins promtool (the Prometheus rule checker and rule unit tester) at the version `make promtool`
// builds: config/prometheus's rules are checked and unit-tested with it (make test).
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
