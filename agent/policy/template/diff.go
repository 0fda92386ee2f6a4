package template

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Diff is one field that differs from the template.
type Diff struct {
	// Path names the field: "data.key", "metadata.labels[\"app.kubernetes.io/name\"]",
	// "subjects[name=alice].kind", "spec.ingress[2]" (an item by its
	// position in the object's list).
	Path string
	// Wanted and Found are the values as JSON, or Absent, NoMatch or
	// Redacted.
	Wanted, Found string
}

// Placeholders for values.
const (
	// Absent: the field is not there (Found), or must not be (Wanted).
	Absent = "(absent)"
	// NoMatch: the list holds no item that carries the wanted one.
	NoMatch = "(no matching item)"
	// Redacted stands for a Secret's value.
	Redacted = "(redacted)"
)

// maxValue bounds a rendered value; longer ones are cut.
const maxValue = 200

func (d Diff) String() string {
	return fmt.Sprintf("%s: want %s, found %s", d.Path, d.Wanted, d.Found)
}

// Format renders differences one a line, for status.
func Format(diffs []Diff) string {
	var b strings.Builder
	for i, d := range diffs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(d.String())
	}
	return b.String()
}

type absent struct{}
type noMatch struct{}

func render(v any, redact bool) string {
	switch v.(type) {
	case absent:
		return Absent
	case noMatch:
		return NoMatch
	}
	if redact {
		return Redacted
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	if len(b) > maxValue {
		cut := maxValue
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		return string(b[:cut]) + "…"
	}
	return string(b)
}

// path is a field path, built as the comparison descends. Children
// extend their parent's backing array without copying it: a path lives
// only while its field is compared (a difference renders it at once), so
// siblings may reuse the same slots.
type path []segment

type segment struct {
	kind  byte // 'f' field, 'k' map key, 'n' named item, 'i' item position
	name  string
	index int
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func root(field string) path {
	return append(make(path, 0, 8), segment{kind: 'f', name: field})
}

func (p path) key(k string) path { return append(p, segment{kind: 'k', name: k}) }

func (p path) named(name string) path { return append(p, segment{kind: 'n', name: name}) }

func (p path) index(i int) path { return append(p, segment{kind: 'i', index: i}) }

// under reports whether the path is field or below it.
func (p path) under(field string) bool { return len(p) > 0 && p[0].kind == 'f' && p[0].name == field }

func (p path) String() string {
	var b strings.Builder
	for _, s := range p {
		switch s.kind {
		case 'f':
			b.WriteString(s.name)
		case 'k':
			if plainKey.MatchString(s.name) {
				b.WriteString("." + s.name)
			} else {
				b.WriteString("[" + strconv.Quote(s.name) + "]")
			}
		case 'n':
			b.WriteString("[name=" + s.name + "]")
		case 'i':
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		}
	}
	return b.String()
}
