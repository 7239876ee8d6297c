package main

// The documentation's own check: every relative link in the Markdown files
// points at something in the repository, every anchor at a heading, and
// nothing points outside the repository.

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// docFiles returns the Markdown files whose links TestDocsLinks checks,
// relative to the repository root (the package directory).
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "SECURITY.md", filepath.Join("bench", "README.md")}
	pages, err := filepath.Glob(filepath.Join("docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatal("no docs/*.md pages found")
	}
	return append(files, pages...)
}

// forbidden are texts that point at files outside the repository or at
// documents a reader of the repository does not have.
var forbidden = []*regexp.Regexp{
	regexp.MustCompile(`shared/`),
	regexp.MustCompile(`SPEC\.md`),
	regexp.MustCompile(`\.\./shared`),
	regexp.MustCompile(`\bSPEC\b`),
	regexp.MustCompile(`(?i)\bissues? \d`),
}

var (
	// inlineLink matches [text](target) and ![alt](target), with an
	// optional "title"; the target is group 1.
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// refDefinition matches a reference definition, [name]: target.
	refDefinition = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$`)
	// codeSpan matches an inline code span, whose text is not a link.
	codeSpan = regexp.MustCompile("`+[^`]*`+")
	// atxHeading matches a heading line; group 1 is its text.
	atxHeading = regexp.MustCompile(`^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$`)
	// headingLink reduces [text](target) in a heading to its text.
	headingLink = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
)

// docLine is one line of a Markdown file outside fenced code blocks.
type docLine struct {
	num  int
	text string
}

// proseLines returns the lines of md that are not inside fenced code
// blocks (``` or ~~~), numbered from 1.
func proseLines(md string) []docLine {
	var out []docLine
	fence := ""
	for i, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		out = append(out, docLine{i + 1, line})
	}
	return out
}

// githubAnchor returns the anchor GitHub gives a heading with text h,
// before duplicates are numbered: lower case, formatting and punctuation
// other than '-' and '_' removed, each space a '-'.
func githubAnchor(h string) string {
	h = headingLink.ReplaceAllString(h, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// headingAnchors returns the anchors of every heading of md, numbered as
// GitHub numbers duplicates: the second "x" is "x-1", the third "x-2".
func headingAnchors(md string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	for _, l := range proseLines(md) {
		m := atxHeading.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		a := githubAnchor(m[1])
		if n := seen[a]; n > 0 {
			anchors[a+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors
}

func TestGithubAnchor(t *testing.T) {
	f := func(heading, want string) {
		t.Helper()
		if got := githubAnchor(heading); got != want {
			t.Errorf("githubAnchor(%q) = %q, want %q", heading, got, want)
		}
	}
	f("Rate limit", "rate-limit")
	f("Several replicas (Redis)", "several-replicas-redis")
	f("`make soak`", "make-soak")
	f("Wrap and WrapHTTP", "wrap-and-wraphttp")
	f("What is inside the \"overhead\"", "what-is-inside-the-overhead")
	f("Limits in Redis (`make bench-redis`)", "limits-in-redis-make-bench-redis")
	f("A — B", "a--b")
	f("keys_file and [links](x.md)", "keys_file-and-links")

	anchors := headingAnchors("# T\n## Notes\n```\n## Not a heading\n```\n## Notes\n## Notes ##\n")
	for _, a := range []string{"t", "notes", "notes-1", "notes-2"} {
		if !anchors[a] {
			t.Errorf("headingAnchors: no %q in %v", a, anchors)
		}
	}
	if anchors["not-a-heading"] {
		t.Errorf("headingAnchors: a line in a code block counted as a heading")
	}
}

// TestDocsLinks checks README.md, SECURITY.md, bench/README.md and
// docs/*.md: every relative link names a file or directory of the
// repository and, when it has an anchor into a Markdown file, one of that
// file's headings; and none of them points outside the repository.
func TestDocsLinks(t *testing.T) {
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	cache := map[string]map[string]bool{}
	anchorsOf := func(path string) (map[string]bool, error) {
		if a, ok := cache[path]; ok {
			return a, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		cache[path] = headingAnchors(string(b))
		return cache[path], nil
	}

	checked := 0
	for _, file := range docFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		md := string(b)
		for i, line := range strings.Split(md, "\n") {
			for _, re := range forbidden {
				if m := re.FindString(line); m != "" {
					t.Errorf("%s:%d: %q refers to something outside the repository: %s", file, i+1, m, strings.TrimSpace(line))
				}
			}
		}

		for _, l := range proseLines(md) {
			text := codeSpan.ReplaceAllString(l.text, "")
			var targets []string
			for _, m := range inlineLink.FindAllStringSubmatch(text, -1) {
				targets = append(targets, m[1])
			}
			if m := refDefinition.FindStringSubmatch(text); m != nil {
				targets = append(targets, m[1])
			}
			for _, target := range targets {
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue // external: not checked
				}
				checked++
				where := file + ":" + strconv.Itoa(l.num) + ": link " + target
				pathPart, anchor, _ := strings.Cut(target, "#")
				pathPart, err := url.PathUnescape(pathPart)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				dest := file
				if pathPart != "" {
					if strings.HasPrefix(pathPart, "/") {
						t.Errorf("%s: absolute path; use a path relative to %s", where, file)
						continue
					}
					dest = filepath.Join(filepath.Dir(file), filepath.FromSlash(pathPart))
					abs, err := filepath.Abs(dest)
					if err != nil {
						t.Fatal(err)
					}
					if rel, err := filepath.Rel(root, abs); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
						t.Errorf("%s: points outside the repository", where)
						continue
					}
					if _, err := os.Stat(dest); err != nil {
						t.Errorf("%s: no such file or directory in the repository (%s)", where, filepath.ToSlash(dest))
						continue
					}
				}
				if anchor == "" || !strings.HasSuffix(strings.ToLower(dest), ".md") {
					continue
				}
				anchors, err := anchorsOf(dest)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				if !anchors[anchor] {
					t.Errorf("%s: %s has no heading with anchor #%s", where, filepath.ToSlash(dest), anchor)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative link found: the link pattern is broken")
	}
}

// docCitation matches a citation of a documentation page in Go source,
// docs/page.md or docs/page.md#anchor (also bench/README.md, SECURITY.md).
var docCitation = regexp.MustCompile(`\b((?:docs/[a-z0-9-]+|bench/README|SECURITY|README)\.md)(#[a-z0-9_-]+)?`)

// TestCodeCitesDocs checks that every documentation page and section a Go
// file of the repository cites exists, and that no Go file points outside
// the repository.
func TestCodeCitesDocs(t *testing.T) {
	cache := map[string]map[string]bool{}
	cited := 0
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || path == "docs_test.go" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, re := range forbidden {
				if m := re.FindString(line); m != "" {
					t.Errorf("%s:%d: %q refers to something outside the repository", path, i+1, m)
				}
			}
			for _, m := range docCitation.FindAllStringSubmatch(line, -1) {
				cited++
				page, anchor := m[1], strings.TrimPrefix(m[2], "#")
				anchors, ok := cache[page]
				if !ok {
					md, err := os.ReadFile(filepath.FromSlash(page))
					if err != nil {
						t.Errorf("%s:%d: cites %s, which does not exist", path, i+1, page)
						cache[page] = nil
						continue
					}
					anchors = headingAnchors(string(md))
					cache[page] = anchors
				}
				if anchors != nil && anchor != "" && !anchors[anchor] {
					t.Errorf("%s:%d: cites %s#%s, which has no such heading", path, i+1, page, anchor)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if cited == 0 {
		t.Fatal("no citation of a documentation page found in Go files: the pattern is broken")
	}
}
