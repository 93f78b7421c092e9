package lab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Where the speakers find their memberlist key (the speaker's defaults).
const (
	SystemNamespace = "portico-system"
	MemberlistName  = "portico-memberlist"
	MemberlistKey   = "secretkey"
)

// createNodes creates a Ready Node object per node namespace (there is no
// kubelet), the system namespace and the speakers' memberlist key.
func (l *Lab) createNodes() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range l.Nodes {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{
			"kubernetes.io/hostname": n.Name, "kubernetes.io/os": "linux",
		}}}
		if err := l.Client.Create(ctx, node); err != nil {
			return err
		}
		node.Status = corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: n.MgmtIP},
				{Type: corev1.NodeHostName, Address: n.Name},
			},
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "PorticoLab",
				Message: "the lab stands in for the kubelet", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
			}},
		}
		if err := l.Client.Status().Update(ctx, node); err != nil {
			return err
		}
	}
	if err := l.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: SystemNamespace}}); err != nil {
		return err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	return l.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: SystemNamespace, Name: MemberlistName},
		Data:       map[string][]byte{MemberlistKey: []byte(base64.StdEncoding.EncodeToString(key))},
	})
}

// ServiceOpts shape a test Service.
type ServiceOpts struct {
	IPv6 bool
	// Local sets externalTrafficPolicy: Local.
	Local       bool
	Annotations map[string]string
	Labels      map[string]string
	// EndpointNodes are the nodes with a ready endpoint; nil means all.
	EndpointNodes []string
	// LoadBalancerClass, when set, is spec.loadBalancerClass.
	LoadBalancerClass string
}

// Namespace is where the lab's Services live.
const Namespace = "default"

// CreateService creates a LoadBalancer Service for port 80 and its
// EndpointSlice (the lab stands in for the endpoint controller).
func (l *Lab) CreateService(ctx context.Context, name string, o ServiceOpts) (*corev1.Service, error) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: name, Annotations: o.Annotations, Labels: o.Labels},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			Ports:                         []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(80), Protocol: corev1.ProtocolTCP}},
			Selector:                      map[string]string{"app": name},
			AllocateLoadBalancerNodePorts: ptr.To(false),
		},
	}
	if o.Local {
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		svc.Spec.AllocateLoadBalancerNodePorts = nil // Local needs a health check node port
	}
	if o.IPv6 {
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
	}
	if o.LoadBalancerClass != "" {
		svc.Spec.LoadBalancerClass = ptr.To(o.LoadBalancerClass)
	}
	nodes := o.EndpointNodes
	if nodes == nil {
		for _, n := range l.Nodes {
			nodes = append(nodes, n.Name)
		}
	}
	if err := l.SetEndpoints(ctx, name, o.IPv6, nodes...); err != nil {
		return nil, err
	}
	if err := l.Client.Create(ctx, svc); err != nil {
		return nil, err
	}
	return svc, nil
}

// SetEndpoints creates or replaces the Service's EndpointSlice with one ready
// endpoint on each named node (its data address stands for a pod IP).
func (l *Lab) SetEndpoints(ctx context.Context, svc string, ipv6 bool, nodes ...string) error {
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: svc + "-lab", Labels: map[string]string{
			discoveryv1.LabelServiceName: svc,
			discoveryv1.LabelManagedBy:   "lab.portico.dev",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](80), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints:   []discoveryv1.Endpoint{},
	}
	if ipv6 {
		slice.AddressType = discoveryv1.AddressTypeIPv6
	}
	for _, name := range nodes {
		n := l.Node(name)
		if n == nil {
			return fmt.Errorf("no node %q in the lab", name)
		}
		addr := n.IPv4
		if ipv6 {
			addr = n.IPv6
		}
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{addr},
			NodeName:   ptr.To(n.Name),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
		})
	}
	var old discoveryv1.EndpointSlice
	err := l.Client.Get(ctx, client.ObjectKeyFromObject(slice), &old)
	if apierrors.IsNotFound(err) {
		return l.Client.Create(ctx, slice)
	}
	if err != nil {
		return err
	}
	slice.ResourceVersion = old.ResourceVersion
	return l.Client.Update(ctx, slice)
}

// DeleteService deletes a Service and its EndpointSlice.
func (l *Lab) DeleteService(ctx context.Context, name string) error {
	err := l.Client.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: name}})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	err = l.Client.Delete(ctx, &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: name + "-lab"}})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// WaitIngress waits until the Service has a load-balancer IP and returns it.
func (l *Lab) WaitIngress(ctx context.Context, name string) (netip.Addr, error) {
	return l.WaitIngressIn(ctx, Namespace, name)
}

// WaitIngressIn is WaitIngress for a Service in namespace ns.
func (l *Lab) WaitIngressIn(ctx context.Context, ns, name string) (netip.Addr, error) {
	var last string
	for {
		var svc corev1.Service
		err := l.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc)
		if err == nil {
			for _, in := range svc.Status.LoadBalancer.Ingress {
				if ip, err := netip.ParseAddr(in.IP); err == nil {
					return ip, nil
				}
			}
			last = "no ingress IP in the Service's status"
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return netip.Addr{}, fmt.Errorf("service %s/%s got no IP: %s (controller log: %s)", ns, name, last, l.logOf("controller"))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (l *Lab) logOf(name string) string {
	if p := l.Proc(name); p != nil {
		return p.Log
	}
	return "none"
}
