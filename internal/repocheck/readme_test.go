package repocheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestReadmeLayoutNamesEveryFolder: the README's layout table names every
// folder git tracks files in, down to two levels (cmd/webhook, pkg/policy,
// …), so a newcomer finds where each thing lives.
func TestReadmeLayoutNamesEveryFolder(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n## Layout\n")
	if !ok {
		t.Fatal("README.md has no ## Layout section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	var named []string
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cell := strings.Split(line, "|")[1]
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cell, -1) {
			named = append(named, strings.TrimSuffix(m[1], "/"))
		}
	}

	cmd := exec.Command("git", "ls-files")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	folders := map[string]bool{}
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.Split(f, "/")
		if len(parts) < 2 {
			continue
		}
		folders[parts[0]] = true
		if len(parts) > 2 {
			folders[parts[0]+"/"+parts[1]] = true
		}
	}
	for f := range folders {
		covered := slices.Contains(named, f) || slices.ContainsFunc(named, func(n string) bool { return strings.HasPrefix(n, f+"/") })
		if !covered {
			t.Errorf("README.md's layout table does not name %s/", f)
		}
	}
}
