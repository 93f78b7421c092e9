// Package manifest reads Kubernetes manifests the way kubectl takes them: files of
// one or more YAML (or JSON) documents separated by "---", folders of such files,
// standard input, and List objects (what `kubectl get -o yaml` writes). Each object
// becomes one Document that remembers where it came from (file, document number,
// line, List item), so that every message about it can point at it.
//
// A document that is not valid YAML, repeats a key, or is not a map is kept as a
// Document with Err set: a bad document never hides the good ones around it.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

// Stdin is the file name that means standard input.
const Stdin = "-"

// Document is one object of a manifest, or a document that could not be read.
type Document struct {
	// Source is the file the document came from ("<stdin>" for standard input).
	Source string
	// Index is the document's number in its file, from 1.
	Index int
	// Line is the line of the file where the document starts, from 1.
	Line int
	// Item is the position in the enclosing List, from 1; 0 when not in a List.
	Item int
	// Object is the decoded document: integers as int64, other numbers as
	// float64, as the API server decodes them. Nil when Err is set.
	Object map[string]any
	// Err says why the document could not be read.
	Err error
}

// APIVersion returns the document's apiVersion, or "" when missing.
func (d *Document) APIVersion() string { return str(d.Object, "apiVersion") }

// Kind returns the document's kind, or "" when missing.
func (d *Document) Kind() string { return str(d.Object, "kind") }

// Name returns metadata.name, or "" when missing.
func (d *Document) Name() string { return str(meta(d.Object), "name") }

// Namespace returns metadata.namespace, or "" when missing.
func (d *Document) Namespace() string { return str(meta(d.Object), "namespace") }

// Position says where the document is inside its file: "document 2 (line 14)",
// with the List item when there is one.
func (d *Document) Position() string {
	s := fmt.Sprintf("document %d (line %d)", d.Index, d.Line)
	if d.Item > 0 {
		s += fmt.Sprintf(", List item %d", d.Item)
	}
	return s
}

// Ref names the object as KIND/NAME, falling back to the position in the file
// when the kind or the name is missing.
func (d *Document) Ref() string {
	if d.Object == nil || d.Kind() == "" || d.Name() == "" {
		return d.Position()
	}
	return d.Kind() + "/" + d.Name()
}

func meta(o map[string]any) map[string]any {
	m, _ := o["metadata"].(map[string]any)
	return m
}

func str(o map[string]any, key string) string {
	s, _ := o[key].(string)
	return s
}

// ReadFiles reads every named file (Stdin for standard input, a folder for the
// *.yaml, *.yml and *.json files in it) in order. A file that cannot be read is
// an error; documents that cannot be parsed are returned with Err set.
func ReadFiles(names []string, stdin io.Reader) ([]Document, error) {
	var out []Document
	for _, name := range names {
		if name == Stdin {
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading standard input: %w", err)
			}
			out = append(out, Parse("<stdin>", data)...)
			continue
		}
		files, err := expand(name)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", f, errors.Unwrap(err))
			}
			out = append(out, Parse(f, data)...)
		}
	}
	return out, nil
}

// expand returns name, or the manifest files of the folder name, sorted.
func expand(name string) ([]string, error) {
	st, err := os.Stat(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such file or folder", name)
		}
		return nil, fmt.Errorf("%s: %w", name, errors.Unwrap(err))
	}
	if !st.IsDir() {
		return []string{name}, nil
	}
	entries, err := os.ReadDir(name)
	if err != nil {
		return nil, fmt.Errorf("reading folder %s: %w", name, errors.Unwrap(err))
	}
	var files []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
			if !e.IsDir() {
				files = append(files, filepath.Join(name, e.Name()))
			}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: a folder without .yaml, .yml or .json files", name)
	}
	slices.Sort(files)
	return files, nil
}

// Parse splits data into documents and decodes each. Empty documents (only
// comments or blank lines) are skipped; List objects are expanded into their
// items.
func Parse(source string, data []byte) []Document {
	var out []Document
	for i, chunk := range split(data) {
		if isBlank(chunk.text) {
			continue
		}
		d := Document{Source: source, Index: i + 1, Line: chunk.line + leadingComments(chunk.text)}
		d.Object, d.Err = decode(chunk.text, chunk.line)
		if d.Err == nil && isList(d.Object) {
			out = append(out, listItems(d)...)
			continue
		}
		out = append(out, d)
	}
	return out
}

type chunk struct {
	text []byte
	line int // first line of text in the file, from 1
}

// split cuts data at lines that are "---" (optionally followed by spaces or a
// comment), the YAML document separator.
func split(data []byte) []chunk {
	lines := bytes.SplitAfter(data, []byte("\n"))
	var out []chunk
	cur := chunk{line: 1}
	for i, l := range lines {
		if isSeparator(l) {
			out = append(out, cur)
			cur = chunk{line: i + 2}
			continue
		}
		cur.text = append(cur.text, l...)
	}
	return append(out, cur)
}

func isSeparator(line []byte) bool {
	t := bytes.TrimRight(line, " \t\r\n")
	rest, ok := bytes.CutPrefix(t, []byte("---"))
	if !ok {
		return false
	}
	if len(rest) == 0 {
		return true
	}
	// "--- # comment" separates too; "----" or "---x" does not.
	return (rest[0] == ' ' || rest[0] == '\t') && bytes.TrimLeft(rest, " \t")[0] == '#'
}

// leadingComments counts the blank and comment lines before the content.
func leadingComments(text []byte) int {
	n := 0
	for _, l := range bytes.Split(text, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			break
		}
		n++
	}
	return n
}

func isBlank(text []byte) bool {
	for _, l := range bytes.Split(text, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// decode parses one YAML document into a map. Errors name the file line.
func decode(text []byte, first int) (map[string]any, error) {
	j, err := yaml.YAMLToJSONStrict(text)
	if err != nil {
		msg := strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")), " ")
		// goyaml counts lines from the document's start; say the file's line.
		msg = yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
			n, _ := strconv.Atoi(m[len("line "):])
			return fmt.Sprintf("line %d", n+first-1)
		})
		return nil, fmt.Errorf("malformed YAML: %s", msg)
	}
	var v any
	if err := utiljson.Unmarshal(j, &v); err != nil {
		return nil, fmt.Errorf("malformed document: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not an object: a manifest document is a map with apiVersion, kind, metadata and spec, this one is %s", describe(v))
	}
	return m, nil
}

func describe(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case string:
		return "a string"
	case nil:
		return "null"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

// isList reports whether o is a List (kind List or *List with items), as
// `kubectl get -o yaml` writes.
func isList(o map[string]any) bool {
	kind, _ := o["kind"].(string)
	_, hasItems := o["items"]
	return strings.HasSuffix(kind, "List") && hasItems
}

func listItems(d Document) []Document {
	items, ok := d.Object["items"].([]any)
	if !ok {
		if d.Object["items"] == nil { // an empty List
			return nil
		}
		d.Object, d.Err = nil, errors.New("malformed List: items is not a list")
		return []Document{d}
	}
	out := make([]Document, 0, len(items))
	for i, it := range items {
		e := Document{Source: d.Source, Index: d.Index, Line: d.Line, Item: i + 1}
		if m, ok := it.(map[string]any); ok {
			e.Object = m
		} else {
			e.Err = fmt.Errorf("not an object: a List item is a map with apiVersion, kind and metadata, this one is %s", describe(it))
		}
		out = append(out, e)
	}
	return out
}
