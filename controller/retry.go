package controller

import (
	"context"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// retrier asks the Service controller to reconcile Services again: the keys
// given to add, and every waiting Service (one whose last allocation failed)
// after waiting is called because an address may have become free.
//
// Calls never block and start no goroutine: they mark what is wanted and wake
// the one goroutine that the controller's source starts, which puts the keys
// into the controller's rate-limited workqueue (where a key already queued is
// not queued twice) and ends when the controller stops. D releases with W
// Services waiting cost at most D wake-ups, each listing the waiting
// Services once; releases that come while a pass runs share the next one.
type retrier struct {
	st   *state
	kick chan struct{} // capacity 1: a pending wake-up

	mu   sync.Mutex
	keys map[string]struct{}
	all  bool // retry every waiting Service
}

func newRetrier(st *state) *retrier {
	return &retrier{st: st, kick: make(chan struct{}, 1), keys: map[string]struct{}{}}
}

// add asks for keys ("namespace/name") to be reconciled again.
func (r *retrier) add(keys ...string) {
	if len(keys) == 0 {
		return
	}
	r.mu.Lock()
	for _, k := range keys {
		r.keys[k] = struct{}{}
	}
	r.mu.Unlock()
	r.wake()
}

// waiting asks for every Service waiting for an address to be reconciled
// again, as they are when the pass runs.
func (r *retrier) waiting() {
	r.mu.Lock()
	r.all = true
	r.mu.Unlock()
	r.wake()
}

func (r *retrier) wake() {
	select {
	case r.kick <- struct{}{}:
	default: // a wake-up is pending already and will see this request
	}
}

// take returns what is asked for and clears it.
func (r *retrier) take() []string {
	r.mu.Lock()
	keys, all := r.keys, r.all
	r.keys, r.all = map[string]struct{}{}, false
	r.mu.Unlock()
	if all {
		for _, k := range r.st.waiting() {
			keys[k] = struct{}{}
		}
	}
	out := make([]string, 0, len(keys))
	for k := range keys {
		out = append(out, k)
	}
	return out
}

// source is the Service controller's source of retries. Its goroutine lives
// as long as the controller does.
func (r *retrier) source() source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		go r.run(ctx, q)
		return nil
	})
}

func (r *retrier) run(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		for _, k := range r.take() {
			ns, name, _ := strings.Cut(k, "/")
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
		}
	}
}
