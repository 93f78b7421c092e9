// Package migrate converts MetalLB and OpenELB configuration into Portico
// objects, field by field, and says for every field it could not carry over (or
// carried over with a different meaning) what happened and what to do.
//
// MetalLB: metallb.io v1beta1/v1beta2 IPAddressPool, L2Advertisement,
// BGPAdvertisement, BGPPeer, BFDProfile and Community, the older AddressPool kind,
// and the ConfigMap format of MetalLB 0.12 and earlier (data.config with
// address-pools, peers, bgp-communities and bfd-profiles). OpenELB:
// network.kubesphere.io/v1alpha2 Eip, BgpConf and BgpPeer.
//
// Conversion never needs a cluster. The converted objects can be run through
// internal/check (Result.Check) before anything is applied.
package migrate

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/check"
	"github.com/portico-lb/portico/internal/manifest"
)

// From names the product converted from.
type From string

// The products Convert reads.
const (
	MetalLB From = "metallb"
	OpenELB From = "openelb"
)

// Name returns the product's name as written.
func (f From) Name() string {
	switch f {
	case MetalLB:
		return "MetalLB"
	case OpenELB:
		return "OpenELB"
	}
	return string(f)
}

// Options change the conversion.
type Options struct {
	// Namespace is where Portico runs; password Secrets go there. Default
	// portico-system.
	Namespace string
}

// Note is one thing about one field of the input: not carried over, carried
// over differently, or (Error) not readable at all.
type Note struct {
	// Source is the input file; Position says where in it.
	Source, Position string
	// Kind and Name name the input object.
	Kind, Name string
	// Field is the input field, e.g. spec.password.
	Field   string
	Message string
	// Command, when set, is a shell command that does what Message asks
	// (create a Secret, for instance).
	Command string
	// Error marks input that could not be read: the conversion is incomplete
	// and nothing should be written.
	Error bool

	order int // the document's place among all documents
}

// String formats the note as FILE: KIND/NAME: FIELD: message.
func (n Note) String() string {
	obj := n.Position
	if n.Kind != "" && n.Name != "" {
		obj = n.Kind + "/" + n.Name
	}
	s := n.Source
	if obj != "" {
		s += ": " + obj
	}
	if n.Field != "" {
		s += ": " + n.Field
	}
	return s + ": " + n.Message
}

// Object is one converted object and the input it came from.
type Object struct {
	Obj  client.Object
	From *manifest.Document
}

// Result is a conversion.
type Result struct {
	Objects []Object
	Notes   []Note
}

// Malformed reports whether some input could not be read.
func (r *Result) Malformed() bool {
	return slices.ContainsFunc(r.Notes, func(n Note) bool { return n.Error })
}

// Convert converts docs, which come from the product from.
func Convert(from From, docs []manifest.Document, opts Options) (*Result, error) {
	c := &converter{opts: opts, res: &Result{}, names: map[string]map[string]string{}, order: map[*manifest.Document]int{}}
	for i := range docs {
		c.order[&docs[i]] = i
	}
	c.opts.Namespace = cmp.Or(c.opts.Namespace, "portico-system")
	switch from {
	case MetalLB:
		c.metallb(docs)
	case OpenELB:
		c.openelb(docs)
	default:
		return nil, fmt.Errorf("cannot convert from %q: portico migrate reads %q and %q", from, MetalLB, OpenELB)
	}
	slices.SortStableFunc(c.res.Notes, func(a, b Note) int { return cmp.Compare(a.order, b.order) })
	slices.SortStableFunc(c.res.Objects, func(a, b Object) int {
		return cmp.Compare(kindOrder[kindOf(a.Obj)], kindOrder[kindOf(b.Obj)])
	})
	return c.res, nil
}

// kindOrder is the order objects are written in: referenced objects first, so
// `kubectl apply -f` with the webhook installed creates them before the objects
// that name them.
var kindOrder = map[string]int{
	"IPAddressPool": 1, "Community": 2, "BFDProfile": 3, "BGPPeer": 4, "L2Advertisement": 5, "BGPAdvertisement": 6,
}

func kindOf(o client.Object) string {
	t := fmt.Sprintf("%T", o)
	return t[strings.LastIndex(t, ".")+1:]
}

// converter holds the state of one conversion.
type converter struct {
	opts Options
	res  *Result
	// names maps, per Portico kind, each input name to the name given.
	names map[string]map[string]string
	// order is each document's place, for sorting notes.
	order map[*manifest.Document]int
}

// note records a note about a field of the document d.
func (c *converter) note(d *manifest.Document, field, format string, args ...any) *Note {
	n := Note{Source: d.Source, Position: d.Position(), Field: field, Message: fmt.Sprintf(format, args...), order: c.order[d]}
	if d.Object != nil {
		n.Kind, n.Name = d.Kind(), d.Name()
		if ns := d.Namespace(); ns != "" && n.Name != "" {
			n.Name = ns + "/" + n.Name
		}
	}
	c.res.Notes = append(c.res.Notes, n)
	return &c.res.Notes[len(c.res.Notes)-1]
}

// fail records input that could not be read.
func (c *converter) fail(d *manifest.Document, field, format string, args ...any) {
	c.note(d, field, format, args...).Error = true
}

// add records a converted object.
func (c *converter) add(d *manifest.Document, o client.Object) {
	o.GetObjectKind().SetGroupVersionKind(v1.GroupVersion.WithKind(kindOf(o)))
	c.res.Objects = append(c.res.Objects, Object{Obj: o, From: d})
}

var notName = regexp.MustCompile(`[^a-z0-9.-]+`)

// name returns the Portico name for an object of kind named in in the input:
// the same name when it is a valid Kubernetes name not yet taken, otherwise a
// valid, unused one (with a note).
func (c *converter) name(d *manifest.Document, kind, in string) string {
	if c.names[kind] == nil {
		c.names[kind] = map[string]string{}
	}
	out := strings.Trim(notName.ReplaceAllString(strings.ToLower(in), "-"), "-.")
	if out == "" {
		out = strings.ToLower(kind)
	}
	if len(validation.IsDNS1123Subdomain(out)) > 0 {
		out = strings.Trim(out[:min(len(out), 240)], "-.")
	}
	taken := func(n string) bool {
		for _, v := range c.names[kind] {
			if v == n {
				return true
			}
		}
		return false
	}
	base := out
	for i := 2; taken(out); i++ {
		out = fmt.Sprintf("%s-%d", base, i)
	}
	if out != in {
		why := "is not a valid Kubernetes name (lowercase letters, digits, '-' and '.')"
		if base == in {
			why = "is taken by another converted " + kind + " (Portico's kinds are cluster-scoped)"
		}
		c.note(d, "", "%s %q %s: converted as %q; references to it are renamed too", kind, in, why, out)
	}
	c.names[kind][in] = out
	return out
}

// ref returns the Portico name given to the object of kind named in, or in
// itself when no such object was converted (a dangling reference, which check
// reports).
func (c *converter) ref(kind, in string) string {
	if n, ok := c.names[kind][in]; ok {
		return n
	}
	return in
}

// YAML renders the objects as a multi-document manifest, each preceded by a
// comment naming the input it came from.
func (r *Result) YAML(header string) ([]byte, error) {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(header), "\n") {
		if l != "" {
			b.WriteString("# " + l + "\n")
		}
	}
	for _, o := range r.Objects {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o.Obj)
		if err != nil {
			return nil, err
		}
		delete(u, "status")
		if m, ok := u["metadata"].(map[string]any); ok {
			delete(m, "creationTimestamp")
		}
		data, err := yaml.Marshal(u)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "---\n# from %s %s in %s\n%s", o.From.Kind(), origin(o.From), o.From.Source, data)
	}
	return []byte(b.String()), nil
}

func origin(d *manifest.Document) string {
	if ns := d.Namespace(); ns != "" {
		return ns + "/" + d.Name()
	}
	return d.Name()
}

// Check runs portico check over the converted objects and returns what it
// finds, each finding naming the input file the object came from.
func (r *Result) Check(namespace string) ([]check.Finding, error) {
	data, err := r.YAML("")
	if err != nil {
		return nil, err
	}
	docs := manifest.Parse("converted", data)
	res, err := check.Run(docs, check.Options{Namespace: namespace})
	if err != nil {
		return nil, err
	}
	out := res.Findings
	for i := range out {
		for _, o := range r.Objects {
			if kindOf(o.Obj) == out[i].Kind && o.Obj.GetName() == out[i].Name {
				out[i].Source = o.From.Source
				out[i].Message += fmt.Sprintf(" (in the %s converted from %s %s)", out[i].Kind, o.From.Kind(), origin(o.From))
				break
			}
		}
	}
	return out, nil
}

// Commands returns the shell commands the notes ask for, in order, once each.
func (r *Result) Commands() []string {
	var out []string
	for _, n := range r.Notes {
		if n.Command != "" && !slices.Contains(out, n.Command) {
			out = append(out, n.Command)
		}
	}
	return out
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// passwordSecret returns the reference for a password moved to a Secret, with
// the note saying how to create it. password is the plain-text password.
func (c *converter) passwordSecret(d *manifest.Document, field, peer, password string) *v1.SecretKeyRef {
	name := peer + "-password"
	n := c.note(d, field, "a plain-text password is not carried over (Portico reads passwords only from Secrets, so they never show in the object): create the Secret %s/%s with the command shown and the converted BGPPeer uses it through spec.passwordSecretRef",
		c.opts.Namespace, name)
	n.Command = fmt.Sprintf("kubectl create secret generic %s -n %s --from-literal=password=%s", name, c.opts.Namespace, shellQuote(password))
	return &v1.SecretKeyRef{Name: name}
}
