// Package check validates Portico manifests offline with the code the cluster
// uses: each object against its CRD (internal/crdschema, what the API server
// refuses at `kubectl apply`), then all of them together through
// internal/config's Builder, the code the controller, the speakers and the
// webhook share (overlapping pools, missing pools, peers, BFD profiles and
// community aliases, aggregation lengths, unsupported combinations).
//
// The objects of all the files given form one configuration, applied in the
// order given: an earlier object counts as the older one where age settles a
// conflict (overlapping pools, duplicate community aliases).
package check

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/config"
	"github.com/portico-lb/portico/internal/crdschema"
	"github.com/portico-lb/portico/internal/manifest"
)

// Finding is one error about one object, or about a document that is not one.
type Finding struct {
	// Source is the file; Position says where in it ("document 2 (line 14)").
	Source, Position string
	// Kind and Name name the object; either may be empty when the document
	// does not say.
	Kind, Name string
	// Field is the field at fault, e.g. spec.addresses[1]; empty when the
	// whole object is.
	Field   string
	Message string

	order int // the document's place among all documents
}

// Object names the object as KIND/NAME, or by its position when the document
// does not give both.
func (f Finding) Object() string {
	if f.Kind == "" || f.Name == "" {
		return f.Position
	}
	return f.Kind + "/" + f.Name
}

// String formats the finding as FILE: KIND/NAME: FIELD: message.
func (f Finding) String() string {
	s := f.Source + ": " + f.Object()
	if f.Field != "" {
		s += ": " + f.Field
	}
	return s + ": " + f.Message
}

// Options change what is checked.
type Options struct {
	// Namespace is where Portico runs: the namespace of Secret references that
	// give none. Default portico-system.
	Namespace string
	// SkipOtherKinds skips objects that are not Portico's instead of reporting
	// them (Secrets are always skipped: BGPPeers name them).
	SkipOtherKinds bool
}

// Result is what Run found.
type Result struct {
	// Findings are sorted by the order of the documents, then by field.
	Findings []Finding
	// Checked counts the Portico objects checked.
	Checked int
	// Skipped names the objects of other kinds that were skipped.
	Skipped []string
	// Config is the configuration built from the objects.
	Config *config.Config
}

// object is one Portico object read from a document.
type object struct {
	doc      *manifest.Document
	order    int
	kind     *crdschema.Kind
	typed    any // *v1.IPAddressPool, ...; nil when it could not be decoded
	badField map[string]bool
}

// Run checks docs. It fails only when Portico's schemas cannot be loaded.
func Run(docs []manifest.Document, opts Options) (*Result, error) {
	set, err := crdschema.Portico()
	if err != nil {
		return nil, fmt.Errorf("loading Portico's CRD schemas: %w", err)
	}
	opts.Namespace = cmp.Or(opts.Namespace, "portico-system")
	r := &Result{}
	var objs []*object
	seen := map[string]*object{}
	for i := range docs {
		d := &docs[i]
		find := func(field, msg string) {
			r.Findings = append(r.Findings, Finding{Source: d.Source, Position: d.Position(), Kind: kindOf(d), Name: nameOf(d), Field: field, Message: msg, order: i})
		}
		if d.Err != nil {
			find("", d.Err.Error())
			continue
		}
		k, msg := lookup(set, d)
		if k == nil {
			switch {
			case msg == "":
			case opts.SkipOtherKinds:
				r.Skipped = append(r.Skipped, d.Source+": "+d.Ref())
			default:
				find("", msg)
			}
			continue
		}
		o := &object{doc: d, order: i, kind: k, badField: map[string]bool{}}
		defaulted, errs := k.Validate(d.Object)
		for _, e := range errs {
			find(e.Field, e.Message)
			o.badField[e.Field] = true
		}
		key := k.Kind + "/" + d.Namespace() + "/" + d.Name()
		if k.Namespaced && d.Namespace() == "" {
			key = k.Kind + "/default/" + d.Name()
		}
		if first := seen[key]; first != nil && d.Name() != "" {
			find("", fmt.Sprintf("defined again (first in %s, %s): kubectl apply keeps only the last one; remove or rename one of them", first.doc.Source, first.doc.Position()))
			continue
		}
		seen[key] = o
		r.Checked++
		if o.typed, err = decode(k.Kind, defaulted, o.badField); err != nil {
			find("", err.Error())
		}
		objs = append(objs, o)
	}
	r.Config = build(objs, opts.Namespace)
	r.Findings = append(r.Findings, problems(r.Config, objs)...)
	slices.SortStableFunc(r.Findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.order, b.order), strings.Compare(a.Field, b.Field))
	})
	return r, nil
}

// kindOf and nameOf return what the document says, even when malformed.
func kindOf(d *manifest.Document) string {
	if d.Object == nil {
		return ""
	}
	return d.Kind()
}

func nameOf(d *manifest.Document) string {
	if d.Object == nil {
		return ""
	}
	return d.Name()
}

// Groups of the products portico migrate converts from.
var migrateFrom = map[string]string{
	"metallb.io":            "metallb",
	"network.kubesphere.io": "openelb",
}

// lookup finds the document's kind among Portico's. For anything else it
// returns a message saying what the document is, or "" when it is to be
// skipped without a word (Secrets).
func lookup(set *crdschema.Set, d *manifest.Document) (*crdschema.Kind, string) {
	av, kind := d.APIVersion(), d.Kind()
	if av == "" || kind == "" {
		return nil, "not a Kubernetes object: apiVersion and kind are required (e.g. apiVersion: portico.dev/v1alpha1, kind: IPAddressPool)"
	}
	if k := set.Lookup(av, kind); k != nil {
		return k, ""
	}
	group, _, _ := strings.Cut(av, "/")
	if !strings.Contains(av, "/") {
		group = ""
	}
	var names []string
	for _, k := range set.Kinds() {
		names = append(names, k.Kind)
	}
	switch {
	case av == "v1" && kind == "Secret":
		return nil, "" // BGPPeers name Secrets; their contents are not checked
	case slices.Contains(set.Groups(), group):
		if best, ok := crdschema.Closest(kind, names); ok {
			k := set.Lookup(av, best)
			if k == nil { // a version that does not exist
				k = kindNamed(set, best)
			}
			return nil, fmt.Sprintf("unknown kind: %s %s does not exist; did you mean apiVersion: %s, kind: %s?", av, kind, k.APIVersion(), k.Kind)
		}
		return nil, fmt.Sprintf("unknown kind: %s has no kind %q; its kinds are %s", av, kind, strings.Join(names, ", "))
	case migrateFrom[group] != "":
		return nil, fmt.Sprintf("not a Portico object but %s %s: convert it with `portico migrate --from %s`", av, kind, migrateFrom[group])
	}
	return nil, fmt.Sprintf("not a Portico object (%s %s): portico check reads only portico.dev/v1alpha1 objects (%s); use --skip-other-kinds to pass over the others",
		av, kind, strings.Join(names, ", "))
}

func kindNamed(set *crdschema.Set, name string) *crdschema.Kind {
	for _, k := range set.Kinds() {
		if k.Kind == name {
			return k
		}
	}
	return nil
}

// decode turns the defaulted object into its Go type. Fields with schema errors
// that stop decoding (a string where a number goes) are left out first, so the
// rest of the object still takes part in the cross-object checks.
func decode(kind string, obj map[string]any, bad map[string]bool) (any, error) {
	var target any
	switch kind {
	case config.KindIPAddressPool:
		target = &v1.IPAddressPool{}
	case config.KindL2Advertisement:
		target = &v1.L2Advertisement{}
	case config.KindBGPAdvertisement:
		target = &v1.BGPAdvertisement{}
	case config.KindBGPPeer:
		target = &v1.BGPPeer{}
	case "BFDProfile":
		target = &v1.BFDProfile{}
	case config.KindCommunity:
		target = &v1.Community{}
	default:
		return nil, nil // status kinds take no part in the configuration
	}
	data, _ := json.Marshal(obj)
	if json.Unmarshal(data, target) == nil {
		return target, nil
	}
	for field := range bad {
		drop(obj, field)
	}
	data, _ = json.Marshal(obj)
	if err := json.Unmarshal(data, target); err != nil {
		return nil, fmt.Errorf("cannot be read as a %s (%v); it is left out of the cross-object checks", kind, err)
	}
	return target, nil
}

// drop removes the top-level field of path that holds the error (for a list
// item, the whole list), so indexes of the remaining items do not shift.
func drop(obj map[string]any, path string) {
	parts := strings.Split(path, ".")
	m := obj
	for i, p := range parts {
		name, _, isItem := strings.Cut(p, "[")
		if i == len(parts)-1 || isItem {
			delete(m, name)
			return
		}
		next, ok := m[name].(map[string]any)
		if !ok {
			delete(m, name)
			return
		}
		m = next
	}
}

// build runs internal/config over the objects, each created one second after
// the previous one in document order.
func build(objs []*object, namespace string) *config.Config {
	in := config.Inputs{Namespace: namespace}
	base := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, o := range objs {
		created := metav1.NewTime(base.Add(time.Duration(o.order) * time.Second))
		switch t := o.typed.(type) {
		case *v1.IPAddressPool:
			t.CreationTimestamp = created
			in.Pools = append(in.Pools, *t)
		case *v1.L2Advertisement:
			t.CreationTimestamp = created
			in.L2Advertisements = append(in.L2Advertisements, *t)
		case *v1.BGPAdvertisement:
			t.CreationTimestamp = created
			in.BGPAdvertisements = append(in.BGPAdvertisements, *t)
		case *v1.BGPPeer:
			t.CreationTimestamp = created
			in.BGPPeers = append(in.BGPPeers, *t)
		case *v1.BFDProfile:
			t.CreationTimestamp = created
			in.BFDProfiles = append(in.BFDProfiles, *t)
		case *v1.Community:
			t.CreationTimestamp = created
			in.Communities = append(in.Communities, *t)
		}
	}
	var b config.Builder
	return b.Build(in)
}

// problems turns the configuration's problems into findings on the documents
// of their objects, leaving out those about a field the schema already
// reported (the API server would have refused the object for it).
func problems(c *config.Config, objs []*object) []Finding {
	byRef := map[string]*object{}
	for _, o := range objs {
		byRef[o.kind.Kind+"/"+o.doc.Name()] = o
	}
	var out []Finding
	for _, p := range c.Problems() {
		o := byRef[p.Kind+"/"+p.Name]
		if o == nil {
			continue
		}
		if o.badField[p.Field] {
			continue
		}
		d := o.doc
		out = append(out, Finding{Source: d.Source, Position: d.Position(), Kind: p.Kind, Name: p.Name, Field: p.Field, Message: p.Message, order: o.order})
	}
	return out
}
