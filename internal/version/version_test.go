package version

import (
	"runtime/debug"
	"testing"
)

func TestAStampedVersionWins(t *testing.T) {
	if got := String("v1.4.0"); got != "v1.4.0" {
		t.Fatalf("String(v1.4.0) = %q", got)
	}
	if got := String("dev"); got == "dev" || got == "" {
		t.Fatalf("String(dev) = %q, want the build's own version", got)
	}
}

func TestBuildInfoGivesModuleVersionAndRevision(t *testing.T) {
	rev := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}
	for _, tc := range []struct {
		main     string
		settings []debug.BuildSetting
		want     string
	}{
		{"(devel)", rev, "devel 0123456789ab+dirty"},
		{"v1.2.3", rev[:1], "v1.2.3 0123456789ab"},
		{"v0.0.0-20261130112233-0123456789ab+dirty", rev, "v0.0.0-20261130112233-0123456789ab+dirty"},
		{"", nil, "devel"},
	} {
		info := &debug.BuildInfo{Main: debug.Module{Version: tc.main}, Settings: tc.settings}
		if got := fromBuildInfo(info); got != tc.want {
			t.Errorf("main %q: %q, want %q", tc.main, got, tc.want)
		}
	}
}
