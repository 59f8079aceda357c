package repocheck

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// maxTrackedSize is the largest file git may track: sources, manifests and
// small test data. Binaries, images and generated data are built at run time.
const maxTrackedSize = 1 << 20

// magics are the leading bytes of executables and archives, which never
// belong in git here.
var magics = []struct {
	kind  string
	magic []byte
}{
	{"an ELF executable", []byte("\x7fELF")},
	{"a Mach-O executable", []byte{0xcf, 0xfa, 0xed, 0xfe}},
	{"a Mach-O executable", []byte{0xce, 0xfa, 0xed, 0xfe}},
	{"a Mach-O universal binary", []byte{0xca, 0xfe, 0xba, 0xbe}},
	{"a PE executable", []byte("MZ")},
	{"an ar archive", []byte("!<arch>\n")},
	{"a zip archive", []byte("PK\x03\x04")},
	{"a gzip file", []byte{0x1f, 0x8b}},
	{"a zstd file", []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{"an xz file", []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
}

// TestNoBinariesOrLargeFilesAreTracked fails for every tracked file that is
// an executable or archive, or larger than 1 MiB, naming it.
func TestNoBinariesOrLargeFilesAreTracked(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	files := bytes.Split(bytes.TrimRight(out, "\x00"), []byte{0})
	if len(files) < 100 {
		t.Fatalf("git ls-files listed %d files: not the repository", len(files))
	}
	for _, f := range files {
		name := string(f)
		p := filepath.Join(root, name)
		info, err := os.Lstat(p)
		if os.IsNotExist(err) {
			continue // deleted in the work tree, not yet in the index
		}
		if err != nil {
			t.Fatal(err)
		}
		if !info.Mode().IsRegular() {
			continue
		}
		if info.Size() > maxTrackedSize {
			t.Errorf("%s is %d bytes: files over 1 MiB do not belong in git (build or generate them at run time)", name, info.Size())
			continue
		}
		if kind := binaryKind(t, p); kind != "" {
			t.Errorf("%s is %s: binaries and archives do not belong in git (build them at run time)", name, kind)
		}
	}
}

func binaryKind(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 8)
	n, _ := f.Read(head)
	head = head[:n]
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.kind
		}
	}
	return ""
}

func TestBinaryKindKnowsAnELF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(p, []byte("\x7fELF\x02\x01\x01"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := binaryKind(t, p); got != "an ELF executable" {
		t.Fatalf("binaryKind = %q", got)
	}
}
