package speaker

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/portico-lb/portico/internal/membership"
)

// keyRefresh is how often a running speaker re-reads the memberlist Secret
// by default: one GET of one small Secret, so a rotation step reaches every
// speaker within this time without a watch (the speaker may only get the
// Secrets it needs, by name).
const keyRefresh = 10 * time.Second

// memberlistKeys reads the memberlist keys from their Secret when the
// speaker starts, and again every Config.KeyRefresh while it runs, handing
// a changed set to memberlist (the first key encrypts, all decrypt): a key
// rotation in the steps of docs/security.md needs no restart and never
// splits the speakers. The SpeakerStatus shows which keys are in use
// (summary), so that an operator knows when every speaker has a step. A Secret that goes missing or turns malformed while
// running changes nothing: the keys in use stay, and the problem is
// reported in the SpeakerStatus until it is fixed.
type memberlistKeys struct {
	s   *Speaker
	ref membership.SecretRef

	mu          sync.Mutex
	unencrypted bool   // started without the Secret (--allow-unencrypted-memberlist)
	problem     string // what is wrong with the Secret now, for lastError
}

func newMemberlistKeys(s *Speaker) *memberlistKeys {
	return &memberlistKeys{s: s, ref: membership.SecretRef{Namespace: s.cfg.Namespace, Name: s.cfg.SecretName, Key: s.cfg.SecretKey}}
}

// get reads the Secret once.
func (k *memberlistKeys) get(ctx context.Context) (*corev1.Secret, error) {
	var sec corev1.Secret
	err := k.s.mgr.GetAPIReader().Get(ctx, types.NamespacedName{Namespace: k.ref.Namespace, Name: k.ref.Name}, &sec)
	return &sec, err
}

// initial reads the keys at start, retrying while the API server cannot be
// reached; nil keys mean unencrypted, when allowed.
func (k *memberlistKeys) initial(ctx context.Context) ([][]byte, error) {
	var sec *corev1.Secret
	err := retryAPI(ctx, k.s.log, "reading the memberlist secret "+k.ref.String(), func() (err error) {
		sec, err = k.get(ctx)
		return err
	})
	ref := k.ref
	switch {
	case apierrors.IsNotFound(err) && k.s.cfg.AllowUnencrypted:
		k.s.log.Warn("memberlist secret not found: running memberlist UNENCRYPTED because --allow-unencrypted-memberlist is set", "secret", ref.String())
		k.mu.Lock()
		k.unencrypted = true
		k.mu.Unlock()
		return nil, nil
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("memberlist secret %s/%s not found; create it with "+
			"`kubectl -n %s create secret generic %s --from-literal=%s=\"$(openssl rand -base64 32)\"` "+
			"(or pass --allow-unencrypted-memberlist to run without encryption)",
			ref.Namespace, ref.Name, ref.Namespace, ref.Name, ref.Key)
	case err != nil:
		return nil, fmt.Errorf("reading memberlist %s: %w", ref, err)
	}
	keys, err := membership.KeysFromSecret(ref, sec.Data)
	if err != nil {
		return nil, fmt.Errorf("memberlist key: %w", err)
	}
	return keys, nil
}

// run re-reads the Secret until ctx ends.
func (k *memberlistKeys) run(ctx context.Context) {
	t := time.NewTicker(k.s.cfg.KeyRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k.refresh(ctx)
	}
}

// refresh reads the Secret and applies a changed set of keys.
func (k *memberlistKeys) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sec, err := k.get(ctx)
	k.mu.Lock()
	unencrypted := k.unencrypted
	k.mu.Unlock()
	problem := ""
	switch {
	case retriable(err):
		return // the API server is away: nothing new to learn, nothing wrong with the Secret
	case apierrors.IsNotFound(err) && unencrypted:
	case apierrors.IsNotFound(err):
		problem = fmt.Sprintf("memberlist secret %s/%s is gone; this speaker keeps the keys it has, "+
			"but a speaker that restarts cannot start until it is back", k.ref.Namespace, k.ref.Name)
	case err != nil:
		problem = fmt.Sprintf("reading memberlist %s: %v; keeping the keys in use", k.ref, err)
	case unencrypted:
		problem = fmt.Sprintf("memberlist secret %s/%s exists now, but this speaker started without it and runs "+
			"memberlist unencrypted: restart it to encrypt (speakers that differ cannot hear each other)", k.ref.Namespace, k.ref.Name)
	default:
		problem = k.apply(sec)
	}
	k.mu.Lock()
	changed := problem != k.problem
	k.problem = problem
	k.mu.Unlock()
	if changed {
		if problem != "" {
			k.s.log.Warn(problem)
		}
		k.s.st.trigger()
	}
}

// apply hands the Secret's keys to memberlist when they changed, and
// returns what is wrong, if anything.
func (k *memberlistKeys) apply(sec *corev1.Secret) string {
	keys, err := membership.KeysFromSecret(k.ref, sec.Data)
	if err != nil {
		return "memberlist key: " + err.Error() + "; keeping the keys in use"
	}
	if slices.EqualFunc(keys, k.s.ml.Keys(), bytes.Equal) {
		return ""
	}
	if err := k.s.ml.SetKeys(keys); err != nil {
		return err.Error()
	}
	k.s.log.Info("memberlist keys changed: "+k.summary(), "secret", k.ref.String())
	k.s.st.trigger()
	return ""
}

// summary says which keys are in use, for the SpeakerStatus (never the
// keys themselves): "2 keys, encrypting with sha256:1a2b3c4d".
func (k *memberlistKeys) summary() string {
	keys := k.s.ml.Keys()
	switch len(keys) {
	case 0:
		return "none: memberlist is not encrypted"
	case 1:
		return "1 key, encrypting with " + membership.Fingerprint(keys[0])
	}
	return fmt.Sprintf("%d keys, encrypting with %s", len(keys), membership.Fingerprint(keys[0]))
}

// currentProblem is what lastError reports about the Secret.
func (k *memberlistKeys) currentProblem() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.problem
}
