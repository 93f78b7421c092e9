package apiwait

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
)

func TestUnreachable(t *testing.T) {
	gr := schema.GroupResource{Resource: "services"}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"wrapped reset", fmt.Errorf("Get https://x: %w", syscall.ECONNRESET), true},
		{"EOF", io.EOF, true},
		{"dial timeout", &url.Error{Op: "Get", URL: "https://x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}}, true},
		{"unknown certificate authority", &url.Error{Op: "Get", URL: "https://x", Err: x509.UnknownAuthorityError{}}, false},
		{"unknown host", &url.Error{Op: "Get", URL: "https://x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}}, false},
		{"starting server", apierrors.NewServiceUnavailable("storage not ready"), true},
		{"forbidden", apierrors.NewForbidden(gr, "x", errors.New("no")), false},
		{"not found", apierrors.NewNotFound(gr, "x"), false},
		{"too many requests", apierrors.NewTooManyRequests("slow down", 1), false},
		{"gone", apierrors.NewResourceExpired("too old resource version"), false},
		{"cancelled", context.Canceled, false},
	} {
		if got := Unreachable(c.err); got != c.want {
			t.Errorf("%s: Unreachable(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

// flaky fails its first fails calls with err, then answers.
type flaky struct {
	fails  int
	err    error
	calls  int
	onCall func(calls int) // optional
}

func (f *flaky) answer() error {
	f.calls++
	if f.onCall != nil {
		f.onCall(f.calls)
	}
	if f.calls <= f.fails {
		return f.err
	}
	return nil
}

func (f *flaky) lw() *toolscache.ListWatch {
	return &toolscache.ListWatch{
		ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			if err := f.answer(); err != nil {
				return nil, err
			}
			return &corev1.ServiceList{}, nil
		},
		WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) {
			if err := f.answer(); err != nil {
				return nil, err
			}
			return watch.NewEmptyWatch(), nil
		},
	}
}

func TestWaitsOutUnreachableServer(t *testing.T) {
	f := &flaky{fails: 3, err: syscall.ECONNREFUSED}
	lw := Wrap(f.lw(), time.Millisecond)
	if _, err := lw.ListWithContext(context.Background(), metav1.ListOptions{}); err != nil {
		t.Fatalf("list: %v", err)
	}
	if f.calls != 4 {
		t.Errorf("list: %d calls, want 4 (three refused, one answered)", f.calls)
	}
	f.calls = 0
	w, err := lw.WatchWithContext(context.Background(), metav1.ListOptions{})
	if err != nil || w == nil {
		t.Fatalf("watch: %v", err)
	}
	if f.calls != 4 {
		t.Errorf("watch: %d calls, want 4", f.calls)
	}
}

func TestAnswersAreNotRetried(t *testing.T) {
	f := &flaky{fails: 1, err: apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "", errors.New("RBAC"))}
	_, err := Wrap(f.lw(), time.Millisecond).ListWithContext(context.Background(), metav1.ListOptions{})
	if !apierrors.IsForbidden(err) || f.calls != 1 {
		t.Errorf("got %v after %d calls, want the Forbidden error after 1", err, f.calls)
	}
}

func TestStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &flaky{fails: 1 << 30, err: syscall.ECONNREFUSED, onCall: func(n int) {
		if n == 3 {
			cancel()
		}
	}}
	_, err := Wrap(f.lw(), time.Millisecond).WatchWithContext(ctx, metav1.ListOptions{})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("got %v, want the last connection error once the context ended", err)
	}
}
