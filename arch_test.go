package main

// The module's layout as rules a change cannot break unnoticed
// (docs/development.md#layout): what may be unsafe or platform-specific,
// which package may import which, and how large a package may grow.

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/authgate/authgate"

// goFile is one parsed non-test Go file of the module.
type goFile struct {
	path  string // relative to the module root, slash-separated
	dir   string // its package directory, slash-separated
	lines int
	ast   *ast.File
	src   []byte
}

// moduleFiles parses every non-test Go file of the module.
func moduleFiles(t *testing.T) []goFile {
	t.Helper()
	var files []goFile
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
		if err != nil {
			return err
		}
		p := filepath.ToSlash(path)
		files = append(files, goFile{path: p, dir: filepath.ToSlash(filepath.Dir(path)), lines: strings.Count(string(src), "\n"), ast: f, src: src})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 50 {
		t.Fatalf("found %d Go files: the walk is broken", len(files))
	}
	return files
}

func imports(f goFile) []string {
	var out []string
	for _, im := range f.ast.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		out = append(out, p)
	}
	return out
}

// TestLayoutUnsafeAndSystemCalls: unsafe, raw system calls, RawConns and
// build constraints are found in internal/netconn only (the signal numbers
// main takes from syscall aside). The benchmark tools under bench/, which
// the gateway does not link, may measure with system calls of their own.
func TestLayoutUnsafeAndSystemCalls(t *testing.T) {
	const netconn = "internal/netconn"
	for _, f := range moduleFiles(t) {
		if strings.HasPrefix(f.dir, "bench/") || f.dir == "bench" {
			continue
		}
		if f.dir == netconn {
			for _, p := range imports(f) {
				if strings.HasPrefix(p, module+"/") {
					t.Errorf("%s imports %s: internal/netconn is a leaf of the module", f.path, p)
				}
			}
			continue
		}
		for _, p := range imports(f) {
			if p == "unsafe" {
				t.Errorf("%s imports unsafe: only internal/netconn may", f.path)
			}
		}
		for _, c := range f.ast.Comments {
			for _, l := range c.List {
				if strings.HasPrefix(l.Text, "//go:build") {
					t.Errorf("%s has a build constraint (%s): only internal/netconn may", f.path, l.Text)
				}
			}
		}
		ast.Inspect(f.ast, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "syscall" {
				t.Errorf("%s calls syscall.%s: only internal/netconn makes system calls", f.path, sel.Sel.Name)
			}
			if sel.Sel.Name == "SyscallConn" {
				t.Errorf("%s calls SyscallConn: only internal/netconn uses raw connections (netconn.RawConnOf)", f.path)
			}
			return true
		})
	}
}

// TestLayoutImports: server imports the internal packages, never the
// reverse; and package server does not link the Redis client, which an
// embedder without Redis must not pay for.
func TestLayoutImports(t *testing.T) {
	for _, f := range moduleFiles(t) {
		if !strings.HasPrefix(f.dir, "internal/") {
			continue
		}
		for _, p := range imports(f) {
			if p == module+"/server" || p == module {
				t.Errorf("%s imports %s: internal packages are below server", f.path, p)
			}
		}
	}
	out, err := exec.Command("go", "list", "-deps", "./server").Output()
	if err != nil {
		t.Fatalf("go list -deps ./server: %v", err)
	}
	deps := string(out)
	if !strings.Contains(deps, module+"/internal/proxy") {
		t.Fatalf("go list -deps ./server lists no internal/proxy: %s", deps)
	}
	if strings.Contains(deps, "rueidis") || strings.Contains(deps, module+"/limiter/redis") {
		t.Error("package server links the Redis client; the CLI (or an embedder) must build the limiter and pass it in Config.Limiter")
	}
}

// maxPackageLines bounds a package's non-test Go source, comments
// included: a package larger than that holds more than one subsystem.
const maxPackageLines = 2500

// TestLayoutPackageSize: no package is over maxPackageLines.
func TestLayoutPackageSize(t *testing.T) {
	size := map[string]int{}
	for _, f := range moduleFiles(t) {
		size[f.dir] += f.lines
	}
	for dir, n := range size {
		if n > maxPackageLines {
			t.Errorf("package %s has %d lines of non-test Go, over %d: split a subsystem out of it", dir, n, maxPackageLines)
		}
	}
}
