// Package docs_test checks the project's documentation as a reader meets it:
// the README stays a short way in, and every link leads somewhere in the
// repository.
package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	// link is a Markdown link or image target: [text](target) or ![alt](target).
	link = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// narration is project history where the state of things belongs.
	narration = regexp.MustCompile(`(?i)\bissue (#|[0-9])|before issue`)
)

// markdownFiles are the repository's Markdown files, as paths relative to
// this folder; hidden and generated folders are skipped.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != ".." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestREADMEIsAShortWayIn(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 200 {
		t.Errorf("README.md has %d lines, want at most 200: details belong in docs/", len(lines))
	}
	if !strings.Contains(string(b), "\n## Contents\n") {
		t.Error("README.md has no table of contents (a \"## Contents\" section)")
	}
	for _, f := range markdownFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range strings.Split(string(b), "\n") {
			if n := len([]rune(l)); n > 200 {
				t.Errorf("%s:%d is %d characters long, want at most 200", f, i+1, n)
			}
			if narration.MatchString(l) {
				t.Errorf("%s:%d narrates history (%q): state how things are", f, i+1, narration.FindString(l))
			}
		}
	}
}

func TestLinksResolveInsideTheRepository(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range markdownFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(stripCode(string(b)), -1) {
			target := m[1]
			if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			abs := filepath.Join(filepath.Dir(f), path)
			if path == "" {
				abs = f
			}
			abs, err := filepath.Abs(abs)
			if err != nil {
				t.Fatal(err)
			}
			if rel, err := filepath.Rel(root, abs); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links to %s, outside the repository", f, target)
				continue
			}
			if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s links to %s, which does not exist", f, target)
				continue
			}
			if anchor != "" && strings.HasSuffix(abs, ".md") && !hasAnchor(t, abs, anchor) {
				t.Errorf("%s links to %s, but %s has no heading with that anchor", f, target, filepath.Base(abs))
			}
		}
	}
}

// stripCode drops fenced code blocks, where brackets are not links.
func stripCode(s string) string {
	var out strings.Builder
	in := false
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			in = !in
			continue
		}
		if !in {
			out.WriteString(l + "\n")
		}
	}
	return out.String()
}

// hasAnchor reports whether the Markdown file has a heading whose anchor, as
// GitHub derives it, is anchor.
func hasAnchor(t *testing.T, file, anchor string) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(stripCode(string(b)), "\n") {
		if h := strings.TrimLeft(l, "#"); h != l && strings.HasPrefix(h, " ") && slug(h) == anchor {
			return true
		}
	}
	return false
}

// slug is GitHub's heading anchor: lower case, punctuation dropped, spaces
// as hyphens.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}
