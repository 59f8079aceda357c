// Package version names the build both commands report: the value stamped
// with -ldflags "-X main.version=…" (make image, the Dockerfile), else the
// module version go install records, else "(devel)".
package version

import "runtime/debug"

// Of returns stamped when the build set it, else the module version.
func Of(stamped string) string {
	if stamped != "" {
		return stamped
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
