//go:build tools

// Package tools pins the Pulumi CLI this module builds (scripts/build-pulumi.sh): the
// import makes go.mod and go.sum list exactly the CLI's dependencies, so `go build
// github.com/pulumi/pulumi/pkg/v3/cmd/pulumi` here is reproducible. The build tag keeps
// it out of every other build.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
