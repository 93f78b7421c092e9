package statusview

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/crdschema"
)

// UnreachableError means the API server could not be asked at all: refused,
// unreachable, timed out, an untrusted certificate, refused credentials, or
// Portico not installed. Its message is one line naming the server.
type UnreachableError struct {
	Server  string
	Message string
}

func (e *UnreachableError) Error() string { return e.Message }

// newClient returns a client that knows Portico's kinds without asking the
// server (no discovery round trips before the first list).
func newClient(cfg *rest.Config) (client.Client, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.AddSpecific(corev1.SchemeGroupVersion.WithKind("Service"), corev1.SchemeGroupVersion.WithResource("services"),
		corev1.SchemeGroupVersion.WithResource("service"), meta.RESTScopeNamespace)
	mapper.AddSpecific(corev1.SchemeGroupVersion.WithKind("Event"), corev1.SchemeGroupVersion.WithResource("events"),
		corev1.SchemeGroupVersion.WithResource("event"), meta.RESTScopeNamespace)
	set, err := crdschema.Portico()
	if err != nil {
		return nil, err
	}
	for _, k := range set.Kinds() {
		gv := schema.GroupVersion{Group: k.Group, Version: k.Version}
		scope := meta.RESTScopeRoot
		if k.Namespaced {
			scope = meta.RESTScopeNamespace
		}
		mapper.AddSpecific(gv.WithKind(k.Kind), gv.WithResource(k.Plural), gv.WithResource(strings.ToLower(k.Kind)), scope)
	}
	return client.New(cfg, client.Options{Scheme: scheme, Mapper: mapper})
}

// Gather reads everything the report needs, in parallel. cfg.Timeout bounds
// each request. An *UnreachableError means nothing could be read; what could
// not be read for lack of permission becomes a warning.
func Gather(ctx context.Context, cfg *rest.Config) (*Report, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, &UnreachableError{cfg.Host, fmt.Sprintf("%s: %v", cfg.Host, err)}
	}
	var (
		s  = Sources{Server: cfg.Host}
		mu sync.Mutex
		wg sync.WaitGroup
		// errs holds the failure of each list, by what was listed.
		errs = map[string]error{}
	)
	pools, l2, bgp, peers := &v1.IPAddressPoolList{}, &v1.L2AdvertisementList{}, &v1.BGPAdvertisementList{}, &v1.BGPPeerList{}
	svcs, anns, speakers, events := &corev1.ServiceList{}, &v1.ServiceAnnouncementList{}, &v1.SpeakerStatusList{}, &corev1.EventList{}
	lists := []struct {
		what string
		list client.ObjectList
		opts []client.ListOption
	}{
		{"ipaddresspools.portico.dev", pools, nil},
		{"l2advertisements.portico.dev", l2, nil},
		{"bgpadvertisements.portico.dev", bgp, nil},
		{"bgppeers.portico.dev", peers, nil},
		{"services", svcs, nil},
		{"serviceannouncements.portico.dev", anns, nil},
		{"speakerstatuses.portico.dev", speakers, nil},
		{"events", events, []client.ListOption{client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("reason", "AllocationFailed")}}},
	}
	for _, l := range lists {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.List(ctx, l.list, l.opts...); err != nil {
				mu.Lock()
				errs[l.what] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, l := range lists { // in a fixed order, so the same failure reads the same
		err := errs[l.what]
		if err == nil {
			continue
		}
		if fatal := classify(cfg.Host, l.what, err); fatal != nil {
			return nil, fatal
		}
		s.Warnings = append(s.Warnings, fmt.Sprintf("could not list %s: %v; the report leaves them out", l.what, apiMessage(err)))
	}
	s.Pools, s.L2Advertisements, s.BGPAdvertisements, s.BGPPeers = pools.Items, l2.Items, bgp.Items, peers.Items
	s.Services, s.Announcements, s.Speakers, s.Events = svcs.Items, anns.Items, speakers.Items, events.Items
	return Build(s), nil
}

// classify returns the one-line error for failures that leave nothing to
// report, nil for those that cost one section (a forbidden list).
func classify(host, what string, err error) error {
	fail := func(format string, args ...any) error {
		return &UnreachableError{host, fmt.Sprintf(format, args...)}
	}
	var ue *url.Error
	var certErr x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case apierrors.IsForbidden(err):
		return nil
	case apierrors.IsUnauthorized(err):
		return fail("the API server at %s refused the credentials (401 Unauthorized): log in again or check the kubeconfig's user", host)
	case apierrors.IsNotFound(err) && strings.HasSuffix(what, ".portico.dev"):
		return fail("Portico is not installed on the cluster at %s: the resource %s does not exist (install the CRDs: kubectl apply -f config/crd)", host, what)
	case errors.As(err, &certErr), errors.As(err, &hostErr), strings.Contains(err.Error(), "x509: "):
		return fail("cannot trust the API server at %s: %s", host, withoutURL(err))
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return fail("no answer from the API server at %s within the timeout (--request-timeout): is the cluster up and the address right?", host)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fail("cannot reach the API server at %s: connection refused (is the cluster up, and is this the right kubeconfig and context?)", host)
	case errors.As(err, &ue):
		return fail("cannot reach the API server at %s: %s", host, rootCause(err))
	case apierrors.ReasonForError(err) != "" || apierrors.IsInternalError(err):
		return nil
	}
	return fail("reading %s from %s: %v", what, host, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, os.ErrDeadlineExceeded)
}

// withoutURL returns the error without the request's method and URL.
func withoutURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// rootCause returns the innermost error's text ("no route to host", "no
// such host").
func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// apiMessage returns the API server's message for err.
func apiMessage(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return se.Status().Message
	}
	return err.Error()
}
