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
)

// Wrap returns lw with list and watch calls that wait out an unreachable API
// server, retrying every interval until it answers or the call's context ends.
func Wrap(lw toolscache.ListerWatcher, interval time.Duration) Both {
	return &listerWatcher{inner: toolscache.ToListerWatcherWithContext(lw), interval: interval}
}

// Both is a ListerWatcher with the context variants, which the reflector uses.
type Both interface {
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

func retry[T any](ctx context.Context, interval time.Duration, call func() (T, error)) (T, error) {
	for {
		v, err := call()
		if err == nil || !Unreachable(err) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(interval):
		}
	}
}

// Unreachable reports whether err says the API server could not be reached
// or is not serving yet, as opposed to an answer it gave.
func Unreachable(err error) bool {
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &netErr):
		return true
	case apierrors.IsServiceUnavailable(err):
		// A starting API server answers 503 until its storage is ready. (A
		// 429, load shedding, is left to client-go's backoff.)
		return true
	}
	return false
}
