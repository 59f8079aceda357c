//go:build tools

// Package tools pins the notation CLI that Signet's interop tests sign with.
// It is its own module so that the CLI's dependencies never enter Signet's
// go.mod; hack/tools.sh notation builds it into ./bin.
package tools

import (
	_ "github.com/notaryproject/notation/cmd/notation"
)
