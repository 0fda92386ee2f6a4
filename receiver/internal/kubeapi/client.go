package kubeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// The receivers read core/v1 and apps/v1 only. Their REST clients use a
// scheme of those two groups instead of client-go's clientset and informer
// factory, which link and register every built-in API group (client-go's
// kubernetes, informers and applyconfigurations packages: about 370 packages,
// 32 MB of binary and several MiB of resident memory the agent never uses).
var (
	scheme         = runtime.NewScheme()
	codecs         = serializer.NewCodecFactory(scheme)
	parameterCodec = runtime.NewParameterCodec(scheme)
)

func init() {
	// As k8s.io/client-go/kubernetes/scheme does, for the two groups.
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	utilruntime.Must(corev1.AddToScheme(scheme))
	utilruntime.Must(appsv1.AddToScheme(scheme))
}

// Resource is one kind the receivers watch.
type Resource struct {
	apps    bool   // apps/v1; else core/v1
	name    string // plural, as in the URL path
	object  runtime.Object
	newList func() runtime.Object
}

// The resources the receivers watch.
var (
	Nodes        = Resource{false, "nodes", &corev1.Node{}, func() runtime.Object { return &corev1.NodeList{} }}
	Namespaces   = Resource{false, "namespaces", &corev1.Namespace{}, func() runtime.Object { return &corev1.NamespaceList{} }}
	Pods         = Resource{false, "pods", &corev1.Pod{}, func() runtime.Object { return &corev1.PodList{} }}
	Events       = Resource{false, "events", &corev1.Event{}, func() runtime.Object { return &corev1.EventList{} }}
	Deployments  = Resource{true, "deployments", &appsv1.Deployment{}, func() runtime.Object { return &appsv1.DeploymentList{} }}
	StatefulSets = Resource{true, "statefulsets", &appsv1.StatefulSet{}, func() runtime.Object { return &appsv1.StatefulSetList{} }}
	DaemonSets   = Resource{true, "daemonsets", &appsv1.DaemonSet{}, func() runtime.Object { return &appsv1.DaemonSetList{} }}
)

// Client reaches the apiserver's core/v1 and apps/v1 APIs.
type Client struct {
	host       string
	core, apps rest.Interface
}

// Client builds a client identifying itself as userAgent.
func (c Config) Client(userAgent string) (*Client, error) {
	rc, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	rc.UserAgent = userAgent
	return NewClient(rc)
}

// NewClient builds a client from a REST configuration.
func NewClient(rc *rest.Config) (*Client, error) {
	httpClient, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("build kubernetes client: %w", err)
	}
	restClient := func(gv schema.GroupVersion, apiPath string) (rest.Interface, error) {
		cfg := *rc
		cfg.GroupVersion, cfg.APIPath = &gv, apiPath
		cfg.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(scheme, codecs).WithoutConversion()
		if cfg.UserAgent == "" {
			cfg.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		rcl, err := rest.RESTClientForConfigAndClient(&cfg, httpClient)
		if err != nil {
			return nil, fmt.Errorf("build kubernetes client for %s: %w", gv, err)
		}
		return rcl, nil
	}
	core, err := restClient(corev1.SchemeGroupVersion, "/api")
	if err != nil {
		return nil, err
	}
	apps, err := restClient(appsv1.SchemeGroupVersion, "/apis")
	if err != nil {
		return nil, err
	}
	return &Client{host: rc.Host, core: core, apps: apps}, nil
}

// Host is the apiserver's URL.
func (c *Client) Host() string { return c.host }

// ServerVersion asks the apiserver for its version.
func (c *Client) ServerVersion(ctx context.Context) (*version.Info, error) {
	body, err := c.core.Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return nil, err
	}
	var info version.Info
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("decode server version: %w", err)
	}
	return &info, nil
}

// ListWatch lists and watches r in namespace ("" for every namespace, and
// for cluster-scoped kinds) as client-go's typed clients do: protobuf
// preferred, watch lists (streamed initial lists) when the apiserver has them.
func (c *Client) ListWatch(r Resource, namespace string) *cache.ListWatch {
	client := c.core
	if r.apps {
		client = c.apps
	}
	request := func(opts *metav1.ListOptions) *rest.Request {
		var timeout time.Duration
		if opts.TimeoutSeconds != nil {
			timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
		}
		return client.Get().
			UseProtobufAsDefault().
			NamespaceIfScoped(namespace, namespace != "").
			Resource(r.name).
			VersionedParams(opts, parameterCodec).
			Timeout(timeout)
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list := r.newList()
			return list, request(&opts).Do(ctx).Into(list)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.Watch = true
			return request(&opts).Watch(ctx)
		},
	}
}

// Informer returns a shared informer of r in namespace, indexed by namespace
// as client-go's informer factory indexes them.
func (c *Client) Informer(r Resource, namespace string, resync time.Duration) cache.SharedIndexInformer {
	return cache.NewSharedIndexInformer(c.ListWatch(r, namespace), r.object, resync,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}
