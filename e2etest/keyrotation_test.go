package e2etest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/e2etest/lab"
	"github.com/portico-lb/portico/internal/membership"
)

// TestMemberlistKeyRotation rotates the speakers' memberlist key while they
// run, in the steps docs/security.md gives (add the new key second, make it
// first, remove the old one; each step picked up by every speaker before the
// next), while the client asks one Service over HTTP and ARP throughout.
// Every request is answered, always by the node that announced the Service
// before the rotation, and never do two MACs answer its IP: the speakers
// stay one memberlist cluster. A speaker restarted afterwards, with only the
// new key, joins the others.
func TestMemberlistKeyRotation(t *testing.T) {
	ctx := testCtx(t, 240*time.Second)
	ip := service(t, ctx, "keyrotation", lab.ServiceOpts{})
	owner := announcer(t, ctx, ip, nil)

	var sec corev1.Secret
	key := client.ObjectKey{Namespace: lab.SystemNamespace, Name: lab.MemberlistName}
	if err := theLab.Client.Get(ctx, key, &sec); err != nil {
		t.Fatal(err)
	}
	oldKey := strings.TrimSpace(string(sec.Data[lab.MemberlistKey]))
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	newKey := base64.StdEncoding.EncodeToString(raw)

	// The client's view, sampled until the rotation is over.
	probeCtx, stopProbes := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var httpSamples, arpSamples int
	var unanswered, elsewhere, arpBad []string
	wg.Go(func() {
		for probeCtx.Err() == nil {
			start := time.Now()
			// A 2 s timeout lets TCP resend a lost SYN once (after 1 s):
			// a request fails only if the IP really went unanswered.
			got, err := theLab.HTTPGet(probeCtx, ip, 2*time.Second)
			mu.Lock()
			if probeCtx.Err() == nil {
				httpSamples++
				switch {
				case err != nil:
					unanswered = append(unanswered, fmt.Sprintf("%s: %v", start.Format("15:04:05.000"), err))
				case got != owner.Name:
					elsewhere = append(elsewhere, fmt.Sprintf("%s: %s", start.Format("15:04:05.000"), got))
				}
			}
			mu.Unlock()
			time.Sleep(time.Until(start.Add(100 * time.Millisecond)))
		}
	})
	wg.Go(func() {
		for probeCtx.Err() == nil {
			// arping -b: every node that would answer does, so a split
			// (two announcers) shows as two MACs in one sample.
			macs, err := theLab.ARPReplies(ip)
			mu.Lock()
			if probeCtx.Err() == nil {
				arpSamples++
				if err != nil || len(macs) != 1 || macs[0] != owner.MAC {
					arpBad = append(arpBad, fmt.Sprintf("%s: %v %v", time.Now().Format("15:04:05.000"), macs, err))
				}
			}
			mu.Unlock()
		}
	})

	for i, step := range []struct {
		what string
		keys []string
	}{
		{"add the new key second", []string{oldKey, newKey}},
		{"make the new key first", []string{newKey, oldKey}},
		{"remove the old key", []string{newKey}},
	} {
		setMemberlistKeys(t, ctx, step.keys)
		waitKeys(t, ctx, step.keys)
		t.Logf("step %d (%s): every speaker has it", i+1, step.what)
		// A few seconds in the new state: probes, gossip and push/pull
		// between speakers on these keys before the next step.
		time.Sleep(3 * time.Second)
	}
	stopProbes()
	wg.Wait()

	t.Logf("%d HTTP requests, %d ARP samples during the rotation", httpSamples, arpSamples)
	if httpSamples < 100 || arpSamples < 10 {
		t.Errorf("too few samples to tell: %d HTTP, %d ARP", httpSamples, arpSamples)
	}
	if len(unanswered) > 0 {
		t.Errorf("%d of %d HTTP requests unanswered: %v", len(unanswered), httpSamples, unanswered)
	}
	if len(elsewhere) > 0 {
		t.Errorf("%d HTTP requests answered by another node than %s: %v", len(elsewhere), owner.Name, elsewhere)
	}
	if len(arpBad) > 0 {
		t.Errorf("%d of %d ARP samples not answered by %s (%s) alone: %v", len(arpBad), arpSamples, owner.Name, owner.MAC, arpBad)
	}

	// With only the new key in the Secret, a restarted speaker joins.
	var restart *lab.Node
	for _, n := range theLab.Nodes {
		if n != owner {
			restart = n
			break
		}
	}
	theLab.StopSpeaker(restart)
	if err := theLab.StartSpeaker(restart); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := theLab.WaitMembers(waitCtx, nodeNames()...); err != nil {
		t.Fatalf("%s restarted with only the new key: %v", restart.Name, err)
	}
}

// setMemberlistKeys writes keys, one a line, into the memberlist Secret.
func setMemberlistKeys(t *testing.T, ctx context.Context, keys []string) {
	t.Helper()
	var sec corev1.Secret
	if err := theLab.Client.Get(ctx, client.ObjectKey{Namespace: lab.SystemNamespace, Name: lab.MemberlistName}, &sec); err != nil {
		t.Fatal(err)
	}
	sec.Data[lab.MemberlistKey] = []byte(strings.Join(keys, "\n") + "\n")
	if err := theLab.Client.Update(ctx, &sec); err != nil {
		t.Fatal(err)
	}
}

// waitKeys waits until every speaker's SpeakerStatus shows len(keys) keys
// and the first one's fingerprint.
func waitKeys(t *testing.T, ctx context.Context, keys []string) {
	t.Helper()
	first, err := base64.StdEncoding.DecodeString(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d keys, encrypting with %s", len(keys), membership.Fingerprint(first))
	if len(keys) == 1 {
		want = "1 key, encrypting with " + membership.Fingerprint(first)
	}
	var last string
	for {
		var list porticov1.SpeakerStatusList
		if err := theLab.Client.List(ctx, &list); err != nil {
			t.Fatal(err)
		}
		missing := nodeNames()
		var seen []string
		for _, st := range list.Items {
			seen = append(seen, st.Name+": "+st.Status.MemberlistKeys)
			if st.Status.MemberlistKeys == want {
				missing = slices.DeleteFunc(missing, func(n string) bool { return n == st.Name })
			}
		}
		if len(missing) == 0 {
			return
		}
		last = strings.Join(seen, "; ")
		select {
		case <-ctx.Done():
			t.Fatalf("%v do not show memberlistKeys %q: %s (speaker logs in %s)", missing, want, last, theLab.RunDir)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
