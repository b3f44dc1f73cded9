package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// helpFlagLine is one flag of sessiond --help: its name, its value kind and
// the environment variable that sets it.
var helpFlagLine = regexp.MustCompile(`^  --([a-z0-9-]+)(?: [a-z0-9]+)?  \$(SESSIOND_[A-Z0-9_]+)$`)

// helpFlags runs sessiond --help and returns its output and the flags it
// lists, each with its environment variable.
func helpFlags(t *testing.T) (string, map[string]string) {
	t.Helper()
	code, out := runBinary(t, nil, "--help")
	if code != 0 {
		t.Fatalf("sessiond --help exited %d:\n%s", code, out)
	}
	flags := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if m := helpFlagLine.FindStringSubmatch(line); m != nil {
			flags[m[1]] = m[2]
		} else if strings.HasPrefix(line, "  --") {
			t.Errorf("flag line without its environment variable: %q", line)
		}
	}
	return out, flags
}

func TestHelpListsSubcommandsSignalsAndEachFlagsEnvironmentVariable(t *testing.T) {
	out, flags := helpFlags(t)
	for _, want := range []string{"sessiond healthcheck", "sessiond certs init", "sessiond version",
		"$SESSIOND_HTTP_ADDR", "$SESSIOND_TLS_CERT", "SIGTERM", "SIGHUP"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not mention %q:\n%s", want, out)
		}
	}
	if len(flags) < 30 {
		t.Fatalf("--help lists %d flags with their environment variable:\n%s", len(flags), out)
	}
	for name, env := range flags {
		if want := "SESSIOND_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")); env != want {
			t.Errorf("--%s is listed with $%s, want $%s", name, env, want)
		}
	}
}

func TestEnvironmentVariableShownByHelpSetsItsFlag(t *testing.T) {
	clearEnv(t)
	_, flags := helpFlags(t)
	t.Setenv(flags["data-dir"], "/from/env")
	t.Setenv(flags["shards"], "7")
	c := mustParse(t)
	if c.DataDir != "/from/env" || c.Shards != 7 {
		t.Fatalf("with $%s and $%s set, data dir %q and %d shards", flags["data-dir"], flags["shards"], c.DataDir, c.Shards)
	}
}

// The README's configuration table and --help must name the same flags, so
// neither documents a flag the other lacks.
func TestREADMEConfigurationTableListsTheFlagsOfHelp(t *testing.T) {
	_, flags := helpFlags(t)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no Configuration section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	documented := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		first, _, _ := strings.Cut(line[1:], "|")
		for _, m := range regexp.MustCompile("`--([a-z0-9-]+)`").FindAllStringSubmatch(first, -1) {
			documented[m[1]] = true
		}
	}
	var undocumented, unknown []string
	for name := range flags {
		if !documented[name] {
			undocumented = append(undocumented, name)
		}
	}
	for name := range documented {
		if _, ok := flags[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(undocumented)
	slices.Sort(unknown)
	if len(undocumented) > 0 || len(unknown) > 0 {
		t.Fatalf("flags of --help missing from README's table: %v; flags in the table sessiond does not know: %v", undocumented, unknown)
	}
}
