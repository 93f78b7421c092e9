package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// AgentConfig is what the agent serves: the kube-proxy stand-in, an HTTP
// responder per node and the root namespace's API proxy.
type AgentConfig struct {
	// Nodes maps node names to their namespaces.
	Nodes map[string]string
	REST  *rest.Config
	// Proxy, when set, accepts root-namespace connections for the API
	// server, whose upstream is dialled inside CtlNS.
	Proxy     net.Listener
	CtlNS     string
	APIServer string // host:port inside CtlNS
	Log       *slog.Logger
}

// RunAgent serves until ctx ends. ready is called once every responder
// listens and the stand-in has synced with the API server.
func RunAgent(ctx context.Context, cfg AgentConfig, ready func()) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for node, ns := range cfg.Nodes {
		ln, err := listenIn(ns, "[::]:80")
		if err != nil {
			return fmt.Errorf("HTTP responder in %s: %w", ns, err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Connection", "close")
			fmt.Fprintln(w, node)
		}), ReadHeaderTimeout: 5 * time.Second}
		wg.Add(2)
		go func() { defer wg.Done(); _ = srv.Serve(ln) }()
		go func() { defer wg.Done(); <-ctx.Done(); _ = srv.Close() }()
	}
	if cfg.Proxy != nil {
		wg.Add(2)
		go func() { defer wg.Done(); proxy(ctx, cfg.Proxy, cfg.CtlNS, cfg.APIServer) }()
		go func() { defer wg.Done(); <-ctx.Done(); cfg.Proxy.Close() }()
	}
	sp, err := newStandIn(cfg)
	if err != nil {
		return err
	}
	defer sp.close()
	return sp.run(ctx, ready)
}

// proxy copies root-namespace connections to the API server in ctlNS.
func proxy(ctx context.Context, ln net.Listener, ctlNS, target string) {
	dial := DialIn(ctlNS)
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			up, err := dial(dctx, "tcp", target)
			cancel()
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
			select {
			case <-done:
			case <-ctx.Done():
			}
		}()
	}
}

// standIn puts every Service ingress IP on lo in every node namespace, as
// kube-proxy's IPVS mode puts them on kube-ipvs0.
type standIn struct {
	cfg     AgentConfig
	handles map[string]*netlink.Handle
	lo      map[string]netlink.Link
	have    map[netip.Addr]bool
	kick    chan struct{}
	factory informers.SharedInformerFactory
	lister  func() []*corev1.Service
}

func newStandIn(cfg AgentConfig) (*standIn, error) {
	s := &standIn{cfg: cfg, handles: map[string]*netlink.Handle{}, lo: map[string]netlink.Link{},
		have: map[netip.Addr]bool{}, kick: make(chan struct{}, 1)}
	for _, ns := range cfg.Nodes {
		h, err := netns.GetFromName(ns)
		if err != nil {
			s.close()
			return nil, err
		}
		nh, err := netlink.NewHandleAt(h)
		h.Close()
		if err != nil {
			s.close()
			return nil, fmt.Errorf("netlink in %s: %w", ns, err)
		}
		s.handles[ns] = nh
		if s.lo[ns], err = nh.LinkByName("lo"); err != nil {
			s.close()
			return nil, err
		}
	}
	kube, err := kubernetes.NewForConfig(cfg.REST)
	if err != nil {
		s.close()
		return nil, err
	}
	s.factory = informers.NewSharedInformerFactory(kube, 0)
	inf := s.factory.Core().V1().Services()
	poke := func(any) {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: poke, UpdateFunc: func(_, n any) { poke(n) }, DeleteFunc: poke,
	}); err != nil {
		s.close()
		return nil, err
	}
	s.lister = func() []*corev1.Service {
		out, _ := inf.Lister().List(everything)
		return out
	}
	return s, nil
}

func (s *standIn) close() {
	for _, h := range s.handles {
		h.Close()
	}
}

func (s *standIn) run(ctx context.Context, ready func()) error {
	s.factory.Start(ctx.Done())
	defer s.factory.Shutdown()
	for typ, ok := range s.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("stand-in: %v informer did not sync", typ)
		}
	}
	s.sync()
	if ready != nil {
		ready()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
			s.sync()
		}
	}
}

// sync makes the lo addresses of every node match the ingress IPs.
func (s *standIn) sync() {
	want := map[netip.Addr]bool{}
	for _, svc := range s.lister() {
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if ip, err := netip.ParseAddr(in.IP); err == nil {
				want[ip] = true
			}
		}
	}
	for ip := range want {
		if !s.have[ip] && s.each(ip, (*netlink.Handle).AddrReplace) == nil {
			s.have[ip] = true
		}
	}
	for ip := range s.have {
		if !want[ip] {
			_ = s.each(ip, (*netlink.Handle).AddrDel)
			delete(s.have, ip)
		}
	}
}

func (s *standIn) each(ip netip.Addr, op func(*netlink.Handle, netlink.Link, *netlink.Addr) error) error {
	bits := 32
	if ip.Is6() {
		bits = 128
	}
	var errs []error
	for ns, h := range s.handles {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(bits, bits)}, Flags: unix.IFA_F_NODAD}
		if err := op(h, s.lo[ns], a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			s.cfg.Log.Error("stand-in: lo address", "ns", ns, "ip", ip, "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// newFileLogger logs to path (appending), or to stderr if it cannot.
func newFileLogger(path string) (*slog.Logger, io.Closer) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), io.NopCloser(nil)
	}
	return slog.New(slog.NewTextHandler(f, nil)), f
}
