// Package version names the build every sessiond binary runs: the version
// stamped at link time when there is one, else the module version and the
// VCS revision the Go toolchain records in the binary.
package version

import (
	"runtime/debug"
	"strings"
)

// String is the version of this build. stamped is a version set at link
// time (-ldflags "-X main.version=v1.2.3"); "" or "dev" means none, and the
// build information decides: the module version ("(devel)" outside a
// tagged release), then the first 12 digits of the VCS revision, "+dirty"
// when the tree had uncommitted changes. It never fails: a binary without
// build information is "devel".
func String(stamped string) string {
	if stamped != "" && stamped != "dev" {
		return stamped
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return fromBuildInfo(info)
}

func fromBuildInfo(info *debug.BuildInfo) string {
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" || strings.Contains(v, shorten(rev)) {
		// A pseudo-version already names the revision.
		return v
	}
	v += " " + shorten(rev)
	if dirty {
		v += "+dirty"
	}
	return v
}

func shorten(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
