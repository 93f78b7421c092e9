package crdschema

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	openapierrors "k8s.io/kube-openapi/pkg/validation/errors"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
)

// Validate checks obj (a decoded manifest: maps, slices, strings, bool, int64,
// float64) as the API server checks an object it is asked to create, and returns
// the object with the schema's defaults applied and every error found. The status
// is dropped: the API server ignores it on create. obj is not modified.
func (k *Kind) Validate(obj map[string]any) (map[string]any, []FieldError) {
	o := runtime.DeepCopyJSON(obj)
	delete(o, "status")
	var errs []FieldError
	add := func(field, msg string) { errs = append(errs, FieldError{Field: field, Message: msg}) }

	errs = append(errs, k.validateMeta(o)...)
	applyDefaults(k.schema, o)
	unknownFields(k.schema, o, "", add)

	// The OpenAPI checks, by the library and call the API server uses.
	res := validate.NewSchemaValidator(k.schema, nil, "", strfmt.Default).Validate(o)
	for _, e := range res.Errors {
		errs = append(errs, openAPIError(e))
	}
	walkRules(k.schema, o, "", add)
	return o, dedupe(errs)
}

// validateMeta checks metadata: only ObjectMeta's fields, of the right types,
// and the name and labels rules of the API server. A cluster-scoped object's
// namespace is ignored, as the API server clears it.
func (k *Kind) validateMeta(o map[string]any) []FieldError {
	raw, ok := o["metadata"]
	if !ok {
		return []FieldError{{Field: "metadata.name", Message: "Required value: every object needs metadata.name"}}
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return []FieldError{{Field: "metadata", Message: fmt.Sprintf("must be an object, not %s", typeName(raw))}}
	}
	var errs []FieldError
	for _, key := range sortedKeys(m) {
		if !objectMetaFields[key] {
			errs = append(errs, FieldError{Field: "metadata." + key, Message: unknownMessage(key, objectMetaFields)})
			delete(m, key)
		}
	}
	if !k.Namespaced {
		delete(m, "namespace")
	}
	data, _ := json.Marshal(m)
	var om metav1.ObjectMeta
	if err := json.Unmarshal(data, &om); err != nil {
		return append(errs, FieldError{Field: "metadata", Message: jsonTypeError(err)})
	}
	if k.Namespaced && om.Namespace == "" {
		om.Namespace = metav1.NamespaceDefault // kubectl's default
	}
	for _, e := range apivalidation.ValidateObjectMeta(&om, k.Namespaced, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata")) {
		errs = append(errs, FieldError{Field: e.Field, Message: e.ErrorBody()})
	}
	return errs
}

// objectMetaFields are the JSON names of ObjectMeta's fields.
var objectMetaFields = func() map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeFor[metav1.ObjectMeta]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}()

func jsonTypeError(err error) string {
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		return fmt.Sprintf("%s must be of type %s, not %s", te.Field, te.Type, te.Value)
	}
	return err.Error()
}

// openAPIError turns a kube-openapi error into a field and a message without
// the repeated field name ("spec.x in body should ..." becomes "should ...").
func openAPIError(err error) FieldError {
	v, ok := err.(*openapierrors.Validation)
	if !ok {
		return FieldError{Message: err.Error()}
	}
	name := strings.TrimPrefix(v.Name, ".")
	if name == "." {
		name = ""
	}
	msg := v.Error()
	for _, prefix := range []string{v.Name + " in " + v.In + " ", v.Name + " "} {
		if s, ok := strings.CutPrefix(msg, prefix); ok {
			msg = s
			break
		}
	}
	if v.Code() == openapierrors.RequiredFailCode {
		msg = "Required value"
	}
	return FieldError{Field: name, Message: msg}
}

// applyDefaults sets the schema's defaults on absent fields, as the API server
// does before validating, descending into present objects and list items.
func applyDefaults(s *spec.Schema, v any) {
	switch x := v.(type) {
	case map[string]any:
		for name, prop := range s.Properties {
			if _, ok := x[name]; !ok && prop.Default != nil {
				x[name] = runtime.DeepCopyJSONValue(normalize(prop.Default))
			}
			if c, ok := x[name]; ok {
				applyDefaults(&prop, c)
			}
		}
	case []any:
		if s.Items != nil && s.Items.Schema != nil {
			for _, it := range x {
				applyDefaults(s.Items.Schema, it)
			}
		}
	}
}

// normalize turns a default decoded by encoding/json (float64 numbers) into the
// types of a decoded manifest (int64 for integers).
func normalize(v any) any {
	switch x := v.(type) {
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
	case map[string]any:
		for k, c := range x {
			x[k] = normalize(c)
		}
	case []any:
		for i, c := range x {
			x[i] = normalize(c)
		}
	}
	return v
}

// unknownFields reports every key the schema does not declare, as the API
// server's strict field validation does, and removes it. metadata is checked
// by validateMeta.
func unknownFields(s *spec.Schema, v any, path string, add func(field, msg string)) {
	if preservesUnknown(s) {
		return
	}
	switch x := v.(type) {
	case map[string]any:
		if len(s.Properties) == 0 {
			if ap := s.AdditionalProperties; ap != nil && ap.Schema != nil {
				for _, key := range sortedKeys(x) {
					unknownFields(ap.Schema, x[key], join(path, key), add)
				}
			}
			return
		}
		known := map[string]bool{}
		for name := range s.Properties {
			known[name] = true
		}
		for _, key := range sortedKeys(x) {
			if path == "" && key == "metadata" {
				continue
			}
			prop, ok := s.Properties[key]
			if !ok {
				add(join(path, key), unknownMessage(key, known))
				delete(x, key)
				continue
			}
			unknownFields(&prop, x[key], join(path, key), add)
		}
	case []any:
		if s.Items != nil && s.Items.Schema != nil {
			for i, it := range x {
				unknownFields(s.Items.Schema, it, fmt.Sprintf("%s[%d]", path, i), add)
			}
		}
	}
}

func preservesUnknown(s *spec.Schema) bool {
	b, _ := s.Extensions.GetBool("x-kubernetes-preserve-unknown-fields")
	return b
}

// unknownMessage says a field is unknown and suggests the closest known one.
func unknownMessage(key string, known map[string]bool) string {
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range known {
			if !yield(k) {
				return
			}
		}
	})
	if best, ok := Closest(key, names); ok {
		return fmt.Sprintf("unknown field %q; did you mean %q?", key, best)
	}
	return fmt.Sprintf("unknown field %q; the fields here are %s", key, strings.Join(names, ", "))
}

// Closest returns the candidate nearest to word when it is near enough to be a
// likely typo (a few letters apart, case ignored).
func Closest(word string, candidates []string) (string, bool) {
	best, bestDist := "", 0
	for _, c := range candidates {
		d := distance(strings.ToLower(word), strings.ToLower(c))
		if best == "" || d < bestDist {
			best, bestDist = c, d
		}
	}
	return best, best != "" && bestDist <= max(2, len(word)/4)
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// walkRules checks list types and the CEL rules, descending into every value
// the schema describes.
func walkRules(s *spec.Schema, v any, path string, add func(field, msg string)) {
	if v == nil {
		return
	}
	checkRules(s, v, path, add)
	switch x := v.(type) {
	case map[string]any:
		for _, key := range sortedKeys(x) {
			if prop, ok := s.Properties[key]; ok {
				walkRules(&prop, x[key], join(path, key), add)
			} else if ap := s.AdditionalProperties; ap != nil && ap.Schema != nil {
				walkRules(ap.Schema, x[key], join(path, key), add)
			}
		}
	case []any:
		checkListType(s, x, path, add)
		if s.Items != nil && s.Items.Schema != nil {
			for i, it := range x {
				walkRules(s.Items.Schema, it, fmt.Sprintf("%s[%d]", path, i), add)
			}
		}
	}
}

// checkListType refuses duplicates in set lists and in map lists (by key), as
// the API server does.
func checkListType(s *spec.Schema, items []any, path string, add func(field, msg string)) {
	kind, _ := s.Extensions.GetString("x-kubernetes-list-type")
	var keys []string
	if raw, ok := s.Extensions["x-kubernetes-list-map-keys"].([]any); ok {
		for _, k := range raw {
			if ks, ok := k.(string); ok {
				keys = append(keys, ks)
			}
		}
	}
	seen := map[string]bool{}
	for i, it := range items {
		var id, what string
		switch kind {
		case "set":
			b, _ := json.Marshal(it)
			id, what = string(b), fmt.Sprintf("duplicate value %s: a set lists each value once", b)
		case "map":
			m, ok := it.(map[string]any)
			if !ok {
				continue
			}
			var parts []string
			for _, k := range keys {
				b, _ := json.Marshal(m[k])
				parts = append(parts, k+" "+string(b))
			}
			id = strings.Join(parts, ", ")
			what = fmt.Sprintf("duplicate entry with %s: each %s may appear once", id, strings.Join(keys, " and "))
		default:
			return
		}
		if seen[id] {
			add(fmt.Sprintf("%s[%d]", path, i), what)
		}
		seen[id] = true
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case []any:
		return "a list"
	case bool:
		return "a boolean"
	case int64, float64:
		return "a number"
	case nil:
		return "null"
	}
	return strconv.Quote(fmt.Sprintf("%T", v))
}

// dedupe drops repeated errors, keeping the first of each.
func dedupe(errs []FieldError) []FieldError {
	seen := map[FieldError]bool{}
	out := errs[:0]
	for _, e := range errs {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}
