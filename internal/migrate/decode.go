package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	sigsjson "sigs.k8s.io/json"

	"github.com/portico-lb/portico/internal/manifest"
)

// decode reads obj into target (a pointer to one of the input types below). A
// field of the wrong type is an error (the input is malformed); a field the
// input type does not have is a note: it is not carried over. It returns false
// when target could not be filled.
func (c *converter) decode(d *manifest.Document, obj map[string]any, target any, prefix string) bool {
	data, err := json.Marshal(obj)
	if err == nil {
		// encoding/json names the field of a type error; sigs.k8s.io/json
		// then decodes as Kubernetes does, matching names case-sensitively.
		probe := reflect.New(reflect.TypeOf(target).Elem()).Interface()
		if err = json.Unmarshal(data, probe); err == nil {
			err = sigsjson.UnmarshalCaseSensitivePreserveInts(data, target)
		}
	}
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			c.fail(d, join(prefix, te.Field), "must be %s, not %s", typeWord(te.Type), te.Value)
		} else {
			c.fail(d, prefix, "cannot be read: %v", err)
		}
		return false
	}
	for _, f := range unknownKeys(obj, reflect.TypeOf(target), prefix) {
		c.note(d, f, "not carried over: the converter does not know this field (a typo, or a field of a newer version); check what it did and set the Portico equivalent by hand if there is one")
	}
	return true
}

func typeWord(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("a whole number from 0 to %d", uint64(1)<<(8*t.Size())-1)
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		if t.String() == "v1.Duration" {
			return "a duration such as 90s"
		}
		return "an object"
	}
	return t.String()
}

func join(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	}
	return prefix + "." + field
}

// unknownKeys lists the keys of v (a decoded JSON value) that type t has no
// field for, following encoding/json's rules (json tags, embedded structs).
// Values held in interface fields are not looked into.
func unknownKeys(v any, t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				out = append(out, join(path, k))
				continue
			}
			out = append(out, unknownKeys(m[k], ft, join(path, k))...)
		}
	case reflect.Slice:
		items, _ := v.([]any)
		for i, it := range items {
			out = append(out, unknownKeys(it, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	case reflect.Map:
		m, _ := v.(map[string]any)
		for k, it := range m {
			out = append(out, unknownKeys(it, t.Elem(), join(path, k))...)
		}
	}
	return out
}

// jsonFields maps the JSON names of t's fields to their types, with the
// fields of embedded structs promoted.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || (!f.IsExported() && !f.Anonymous):
		case f.Anonymous && name == "":
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			for k, ft := range jsonFields(et) {
				out[k] = ft
			}
		case name == "":
			out[f.Name] = f.Type
		default:
			out[name] = f.Type
		}
	}
	return out
}
