package bgp

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// gobgp logs through log/slog. gobgpHandler sits between gobgp and the
// announcer's logger:
//
//   - levels: gobgp's debug records go below slog.LevelDebug (its per-UPDATE
//     chatter), info to debug, warnings and errors to warn, all with
//     component=gobgp;
//   - it shows some records to the announcer first, whatever the level:
//     gobgp reports several session errors (a refused or timed-out connect,
//     a NOTIFICATION answering our OPEN, BFD expiry) only in its log, not in
//     its API;
//   - it replaces any configured password found in a string attribute;
//   - it passes a warning on once a minute at most, per message and peer
//     (gobgp repeats some every second, e.g. BFD's "Can't listen UDP").
type gobgpHandler struct {
	inner   slog.Handler
	seen    []slog.Attr // every WithAttrs attribute, for observe
	pending []slog.Attr // WithAttrs attributes not yet handed to inner (they are redacted on the way)
	observe func(gobgpRecord)
	secrets *atomic.Pointer[[]string]
	repeats *repeats // shared by all handlers derived from one
}

// repeatQuiet is how long a warning is not repeated.
const repeatQuiet = time.Minute

type repeats struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// allow reports whether a warning with key may be passed on at now.
func (r *repeats) allow(key string, now time.Time) bool {
	if r == nil {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.last[key]; ok && now.Sub(t) < repeatQuiet {
		return false
	}
	if r.last == nil || len(r.last) > 1024 {
		r.last = map[string]time.Time{}
	}
	r.last[key] = now
	return true
}

// gobgpRecord is a gobgp log record the announcer looks at.
type gobgpRecord struct {
	msg   string
	attrs map[string]slog.Value // record and logger attributes, by key
}

func (r gobgpRecord) str(key string) string {
	v, ok := r.attrs[key]
	if !ok {
		return ""
	}
	return v.Resolve().String()
}

func (r gobgpRecord) int(key string) (int, bool) {
	v, ok := r.attrs[key]
	if !ok {
		return 0, false
	}
	switch v = v.Resolve(); v.Kind() {
	case slog.KindInt64:
		return int(v.Int64()), true
	case slog.KindUint64:
		return int(v.Uint64()), true
	}
	return 0, false
}

// observed lists the gobgp messages the announcer reads.
var observed = map[string]bool{
	"failed to connect":            true,
	"outgoing connection IO error": true,
	"outgoing connection closing due to hold timer expired in OPEN SENT state": true,
	"sent notification":             true,
	"received notification":         true,
	"hold timer expired":            true,
	"Expired":                       true, // BFD detection time passed
	"Remote peer signaled BFD down": true,
	"Can't listen UDP":              true, // BFD's port 3784
	"Can't dial UDP":                true,
}

// Records dropped outright: Close calls gobgp's Stop after StopBgp, which
// logs an error for the second stop.
const stopNoise = "failed to stop BGP server"

func (h *gobgpHandler) Enabled(context.Context, slog.Level) bool { return true }

func mapLevel(l slog.Level) slog.Level {
	switch {
	case l >= slog.LevelWarn:
		return slog.LevelWarn
	case l >= slog.LevelInfo:
		return slog.LevelDebug
	}
	return slog.LevelDebug - 4
}

func (h *gobgpHandler) Handle(ctx context.Context, r slog.Record) error {
	level := mapLevel(r.Level)
	if (!observed[r.Message] || h.observe == nil) && !h.inner.Enabled(ctx, level) {
		return nil
	}
	rec := gobgpRecord{msg: r.Message, attrs: map[string]slog.Value{}}
	for _, a := range h.seen {
		rec.attrs[a.Key] = a.Value
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value
		return true
	})
	if observed[r.Message] && h.observe != nil {
		h.observe(rec)
	}
	if r.Message == stopNoise || !h.inner.Enabled(ctx, level) {
		return nil
	}
	if level >= slog.LevelWarn && !h.repeats.allow(r.Message+"\x00"+rec.str("Key")+"\x00"+rec.str("Peer"), r.Time) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, r.Message, r.PC)
	out.AddAttrs(slog.String("component", "gobgp"))
	for _, a := range h.pending {
		out.AddAttrs(h.redact(a))
	}
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.redact(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h *gobgpHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.seen = append(slices.Clip(h.seen), attrs...)
	n.pending = append(slices.Clip(h.pending), attrs...)
	return &n
}

func (h *gobgpHandler) WithGroup(name string) slog.Handler {
	n := *h
	if len(h.pending) > 0 {
		redacted := make([]slog.Attr, len(h.pending))
		for i, a := range h.pending {
			redacted[i] = h.redact(a)
		}
		n.inner = h.inner.WithAttrs(redacted)
	}
	n.inner = n.inner.WithGroup(name)
	n.pending = nil
	return &n
}

// redact replaces configured passwords in string values (and in values
// that print as strings: errors, Stringers, byte slices).
func (h *gobgpHandler) redact(a slog.Attr) slog.Attr {
	secrets := h.secrets.Load()
	if secrets == nil || len(*secrets) == 0 {
		return a
	}
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, x := range g {
			out[i] = h.redact(x)
		}
		return slog.Group(a.Key, out...)
	case slog.KindString, slog.KindAny:
		s := v.String()
		if b, ok := v.Any().([]byte); ok && v.Kind() == slog.KindAny {
			s = string(b)
		}
		for _, p := range *secrets {
			if p != "" && strings.Contains(s, p) {
				return slog.String(a.Key, strings.ReplaceAll(s, p, "<redacted>"))
			}
		}
	}
	return a
}
