// Package crdschema checks an object against Portico's CustomResourceDefinitions
// offline, the way the API server does on `kubectl apply`: unknown fields (as
// kubectl's strict field validation refuses them), the CRD's OpenAPI schema (types,
// required fields, bounds, lengths, patterns, enums) with the same library the API
// server uses (k8s.io/kube-openapi's validate), list types (no duplicates in set and
// map lists), defaults applied before the rules, metadata (name syntax, labels), and
// every CEL rule (x-kubernetes-validations) of the CRDs.
//
// The CEL rules are evaluated by Go equivalents (rules.go), each keyed by a hash of
// the rule's text, with the message the CRD gives: a CEL evaluator would need
// modules this repository does not carry. A test fails when a CRD has a rule
// without an equivalent, and another compares the verdicts with a real API server.
//
// The CRDs are embedded from crds/, a copy of config/crd kept identical by `go
// generate` and checked by a test, so the CLI works anywhere without a cluster.
package crdschema

//go:generate sh -c "rm -f crds/*.yaml && cp ../../config/crd/*.yaml crds/"

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/yaml"
)

//go:embed crds/*.yaml
var crdFiles embed.FS

// Kind is the schema of one kind of one CRD version.
type Kind struct {
	Group, Version, Kind string
	// Plural is the resource name, e.g. ipaddresspools.
	Plural string
	// Namespaced is true for namespaced kinds (ServiceAnnouncement).
	Namespaced bool
	schema     *spec.Schema
}

// APIVersion returns group/version.
func (k *Kind) APIVersion() string { return k.Group + "/" + k.Version }

// Set holds the kinds of a set of CRDs.
type Set struct {
	kinds map[string]*Kind // by apiVersion + " " + kind
}

// Portico returns the kinds of Portico's CRDs, loaded once from the embedded
// copies.
var Portico = sync.OnceValues(func() (*Set, error) {
	return Load(crdFiles)
})

// Load reads every *.yaml CRD in fsys.
func Load(fsys fs.FS) (*Set, error) {
	names, err := fs.Glob(fsys, "crds/*.yaml")
	if err != nil {
		return nil, err
	}
	s := &Set{kinds: map[string]*Kind{}}
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		if err := s.add(data); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return s, nil
}

// crd is the part of a CustomResourceDefinition this package reads.
type crd struct {
	Kind string `json:"kind"`
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind   string `json:"kind"`
			Plural string `json:"plural"`
		} `json:"names"`
		Scope    string `json:"scope"`
		Versions []struct {
			Name   string `json:"name"`
			Served bool   `json:"served"`
			Schema struct {
				OpenAPIV3Schema json.RawMessage `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

func (s *Set) add(data []byte) error {
	var c crd
	if err := yaml.Unmarshal(data, &c); err != nil {
		return err
	}
	if c.Kind != "CustomResourceDefinition" {
		return fmt.Errorf("not a CustomResourceDefinition but %q", c.Kind)
	}
	for _, v := range c.Spec.Versions {
		if !v.Served {
			continue
		}
		sch := new(spec.Schema)
		if err := json.Unmarshal(v.Schema.OpenAPIV3Schema, sch); err != nil {
			return fmt.Errorf("version %s: schema: %w", v.Name, err)
		}
		k := &Kind{Group: c.Spec.Group, Version: v.Name, Kind: c.Spec.Names.Kind, Plural: c.Spec.Names.Plural,
			Namespaced: c.Spec.Scope == "Namespaced", schema: sch}
		s.kinds[k.APIVersion()+" "+k.Kind] = k
	}
	return nil
}

// Lookup returns the kind with this apiVersion and kind, or nil.
func (s *Set) Lookup(apiVersion, kind string) *Kind {
	return s.kinds[apiVersion+" "+kind]
}

// Kinds returns every kind, sorted by name.
func (s *Set) Kinds() []*Kind {
	out := make([]*Kind, 0, len(s.kinds))
	for _, k := range s.kinds {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b *Kind) int { return strings.Compare(a.Kind, b.Kind) })
	return out
}

// Groups returns the API groups of the set, sorted.
func (s *Set) Groups() []string {
	var out []string
	for _, k := range s.kinds {
		if !slices.Contains(out, k.Group) {
			out = append(out, k.Group)
		}
	}
	slices.Sort(out)
	return out
}

// FieldError is one thing wrong with one field.
type FieldError struct {
	// Field is the path, e.g. spec.addresses[1]; "" for the object itself.
	Field string
	// Message says what is wrong and, where the schema says it, what to write.
	Message string
}

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}
