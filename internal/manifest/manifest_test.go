package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	type want struct {
		ref   string // Ref() of each document, or "ERR: substring" for an error
		line  int
		index int
	}
	cases := []struct {
		name string
		in   string
		want []want
	}{
		{"one document", "apiVersion: v1\nkind: A\nmetadata: {name: a}\n",
			[]want{{"A/a", 1, 1}}},
		{"separators, comments and empty documents", "# header\n---\nkind: A\nmetadata: {name: a}\n--- # second\nkind: B\nmetadata: {name: b}\n---\n# nothing\n---\n",
			[]want{{"A/a", 3, 2}, {"B/b", 6, 3}}},
		{"the line is the first line of content", "# comment\n\nkind: A\nmetadata: {name: a}\n", []want{{"A/a", 3, 1}}},
		{"malformed document between good ones", "kind: A\nmetadata: {name: a}\n---\nkind: B\n  bad: indent\n---\nkind: C\nmetadata: {name: c}\n",
			[]want{{"A/a", 1, 1}, {"ERR: malformed YAML: yaml: line 5:", 4, 2}, {"C/c", 7, 3}}},
		{"duplicate key", "kind: A\nmetadata: {name: a}\nkind: B\n",
			[]want{{`ERR: key "kind" already set`, 1, 1}}},
		{"not a map", "- a\n- b\n", []want{{"ERR: not an object", 1, 1}}},
		{"no name", "kind: A\n", []want{{"document 1 (line 1)", 1, 1}}},
		{"List", "apiVersion: v1\nkind: List\nitems:\n- {kind: A, metadata: {name: a}}\n- 7\n",
			[]want{{"A/a", 1, 1}, {"ERR: not an object", 1, 1}}},
		{"typed List", "kind: IPAddressPoolList\nitems: [{kind: A, metadata: {name: a}}]\n", []want{{"A/a", 1, 1}}},
		{"empty List", "kind: List\nitems: []\n", nil},
		{"JSON", `{"kind": "A", "metadata": {"name": "a"}}`, []want{{"A/a", 1, 1}}},
		{"dashes inside a value are not a separator", "kind: A\nmetadata: {name: a}\ndata: |\n  ----\n  x\n", []want{{"A/a", 1, 1}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			docs := Parse("f.yaml", []byte(tc.in))
			if len(docs) != len(tc.want) {
				t.Fatalf("got %d documents, want %d: %+v", len(docs), len(tc.want), docs)
			}
			for i, w := range tc.want {
				d := docs[i]
				if msg, ok := strings.CutPrefix(w.ref, "ERR: "); ok {
					if d.Err == nil || !strings.Contains(d.Err.Error(), msg) {
						t.Errorf("document %d: error %v, want one containing %q", i, d.Err, msg)
					}
				} else if d.Err != nil || d.Ref() != w.ref {
					t.Errorf("document %d: ref %q err %v, want %q", i, d.Ref(), d.Err, w.ref)
				}
				if d.Line != w.line || d.Index != w.index || d.Source != "f.yaml" {
					t.Errorf("document %d: at %s:%d index %d, want line %d index %d", i, d.Source, d.Line, d.Index, w.line, w.index)
				}
			}
		})
	}
}

func TestNumbersDecodeAsTheAPIServerDoes(t *testing.T) {
	docs := Parse("f", []byte("kind: A\nspec: {asn: 4294967295, ratio: 0.5}\n"))
	spec := docs[0].Object["spec"].(map[string]any)
	if _, ok := spec["asn"].(int64); !ok {
		t.Errorf("integer decoded as %T", spec["asn"])
	}
	if _, ok := spec["ratio"].(float64); !ok {
		t.Errorf("fraction decoded as %T", spec["ratio"])
	}
}

func TestReadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.yaml", "kind: A\nmetadata: {name: a}\n")
	write("b.yml", "kind: B\nmetadata: {name: b}\n")
	write("notes.txt", "not a manifest")

	docs, err := ReadFiles([]string{a, Stdin, dir}, strings.NewReader("kind: S\nmetadata: {name: s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range docs {
		got = append(got, filepath.Base(d.Source)+":"+d.Ref())
	}
	if strings.Join(got, " ") != "a.yaml:A/a <stdin>:S/s a.yaml:A/a b.yml:B/b" {
		t.Errorf("documents: %v", got)
	}

	for _, tc := range []struct{ name, want string }{
		{filepath.Join(dir, "missing.yaml"), "missing.yaml: no such file or folder"},
		{t.TempDir(), "a folder without .yaml, .yml or .json files"},
	} {
		if _, err := ReadFiles([]string{tc.name}, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
