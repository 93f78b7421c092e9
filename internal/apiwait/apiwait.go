// Package apiwait makes informers resume as soon as an unreachable API server
// answers again. client-go's reflector backs off after each failed list or
// watch, up to 30 s with jitter up to 60 s, so a 30 s outage leaves a
// controller blind for up to a minute after the API server is back. Wrapped
// list and watch calls instead wait while the server cannot be reached,
// retrying every interval, and so never fail for that reason.
//
// It is meant for a handful of processes (the controller's replicas): every
// waiting informer tries the server once per interval.
package apiwait

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// Wrap returns lw with list and watch calls that wait out an unreachable API
// server, retrying every interval until it answers or the call's context ends.
func Wrap(lw toolscache.ListerWatcher, interval time.Duration) ListerWatcher {
	return &listerWatcher{inner: toolscache.ToListerWatcherWithContext(lw), interval: interval}
}

// ListerWatcher has both the plain and the context methods; the reflector
// uses the context ones.
type ListerWatcher interface {
	toolscache.ListerWatcher
	toolscache.ListerWatcherWithContext
}

type listerWatcher struct {
	inner    toolscache.ListerWatcherWithContext
	interval time.Duration
}

func (l *listerWatcher) ListWithContext(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
	return retry(ctx, l.interval, func() (runtime.Object, error) { return l.inner.ListWithContext(ctx, o) })
}

func (l *listerWatcher) WatchWithContext(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	return retry(ctx, l.interval, func() (watch.Interface, error) { return l.inner.WatchWithContext(ctx, o) })
}

// List and Watch satisfy the older interface; the reflector calls the
// context variants above.
func (l *listerWatcher) List(o metav1.ListOptions) (runtime.Object, error) {
	return l.ListWithContext(context.Background(), o)
}

func (l *listerWatcher) Watch(o metav1.ListOptions) (watch.Interface, error) {
	return l.WatchWithContext(context.Background(), o)
}

// retry calls call until it does not fail for want of the API server. The
// wait is logged when it starts and when it ends, since client-go's own
// "Failed to watch" lines no longer appear for it.
func retry[T any](ctx context.Context, interval time.Duration, call func() (T, error)) (T, error) {
	var since time.Time
	for {
		v, err := call()
		if err == nil || !Unreachable(err) {
			if !since.IsZero() {
				klog.InfoS("API server answers again", "waited", time.Since(since).Round(time.Millisecond))
			}
			return v, err
		}
		if since.IsZero() {
			since = time.Now()
			klog.InfoS("API server unreachable; retrying", "every", interval, "err", err)
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(interval):
		}
	}
}

// Unreachable reports whether err says the API server could not be reached
// or is not serving yet, as opposed to an answer it gave. Other transport
// errors (a bad certificate, an unknown host name) are misconfiguration and
// are returned at once, so that they are reported.
func Unreachable(err error) bool {
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &netErr) && netErr.Timeout():
		return true
	case apierrors.IsServiceUnavailable(err):
		// A starting API server answers 503 until its storage is ready. (A
		// 429, load shedding, is left to client-go's backoff.)
		return true
	}
	return false
}
