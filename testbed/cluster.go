package testbed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// ClusterOptions describe one test-bed cluster. The zero value is a cluster
// named "cluster" with no nodes in a new temporary directory.
type ClusterOptions struct {
	// Name names the cluster in its kubeconfig and its logs.
	Name string
	// Dir is the cluster's working directory (pki, etcd data, logs,
	// kubeconfig). Empty means a new temporary directory that Stop removes; a
	// given Dir is kept.
	Dir string
	// Nodes is the number of kwok nodes to create and wait Ready for.
	Nodes int
	// NodeCapacity is each node's capacity and allocatable; missing cpu,
	// memory and pods default to 8, 32Gi and 110.
	NodeCapacity corev1.ResourceList
	// NodeLabels are added to every node.
	NodeLabels map[string]string
	// NodeMonitorGracePeriod is how long the controller manager waits for a
	// node's heartbeat (its kwok lease) before marking it Unknown; 0 keeps
	// Kubernetes' default (50s). Shorter makes lost nodes show sooner.
	NodeMonitorGracePeriod time.Duration
	// ControlPlaneOnly runs etcd, kube-apiserver and kube-controller-manager
	// only: no scheduler, no kwok, no nodes. The hub's control plane is one.
	ControlPlaneOnly bool
	// StartTimeout bounds the whole start. Default 2 minutes.
	StartTimeout time.Duration
	// Logger reports progress; nil means slog.Default().
	Logger *slog.Logger
}

// Cluster is a running test-bed cluster.
type Cluster struct {
	Name string
	// Dir is the working directory; Logs holds one file per process.
	Dir, Logs string
	// KubeconfigPath is an admin kubeconfig with embedded credentials.
	KubeconfigPath string
	// RESTConfig is the same admin identity for client-go.
	RESTConfig *rest.Config
	// APIServerURL is https://127.0.0.1:<port>.
	APIServerURL string

	procs     []*process // in start order
	removeDir bool
	stopOnce  sync.Once
}

// StartCluster starts etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok, creates the nodes, and returns when the API server
// is ready, every node is Ready and the default ServiceAccount exists (so Pods
// can be created at once). On error nothing is left running.
func StartCluster(ctx context.Context, bins *Binaries, opts ClusterOptions) (*Cluster, error) {
	if opts.Name == "" {
		opts.Name = "cluster"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ControlPlaneOnly && opts.Nodes > 0 {
		return nil, fmt.Errorf("start cluster %q: a control-plane-only cluster has no kwok to run %d nodes", opts.Name, opts.Nodes)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		c, retry, err := startOnce(ctx, bins, opts)
		if err == nil {
			return c, nil
		}
		lastErr = err
		if !retry {
			break
		}
		opts.Logger.Warn("test-bed cluster lost a port race; retrying on new ports", "cluster", opts.Name, "attempt", attempt)
	}
	return nil, fmt.Errorf("start cluster %q: %w", opts.Name, lastErr)
}

func startOnce(ctx context.Context, bins *Binaries, opts ClusterOptions) (c *Cluster, retry bool, err error) {
	c = &Cluster{Name: opts.Name, Dir: opts.Dir}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "fleetpulse-testbed-"+opts.Name+"-"); err != nil {
			return nil, false, fmt.Errorf("create working directory: %w", err)
		}
		c.removeDir = true
	}
	defer func() {
		if err != nil {
			retry = c.portRace()
			c.Stop()
		}
	}()
	c.Logs = filepath.Join(c.Dir, "logs")
	if err := os.MkdirAll(c.Logs, 0o755); err != nil {
		return c, false, fmt.Errorf("create log directory: %w", err)
	}
	pk, err := newPKI(filepath.Join(c.Dir, "pki"))
	if err != nil {
		return c, false, err
	}
	p, err := ports.getN(6)
	if err != nil {
		return c, false, err
	}
	etcdPort, etcdPeerPort, apiPort, kcmPort, schedPort, kwokPort := p[0], p[1], p[2], p[3], p[4], p[5]
	c.APIServerURL = "https://127.0.0.1:" + strconv.Itoa(apiPort)

	etcd, err := c.start("etcd", bins.Etcd,
		"--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-url=http://127.0.0.1:"+strconv.Itoa(etcdPort),
		"--listen-peer-url=http://127.0.0.1:"+strconv.Itoa(etcdPeerPort),
	)
	if err != nil {
		return c, false, err
	}
	etcdHealth := "http://127.0.0.1:" + strconv.Itoa(etcdPort) + "/health"
	if err := etcd.waitFor(ctx, "etcd health", func(ctx context.Context) bool { return httpOK(ctx, etcdHealth) }); err != nil {
		return c, false, err
	}

	api, err := c.start("kube-apiserver", bins.APIServer, apiServerArgs(pk, etcdPort, apiPort)...)
	if err != nil {
		return c, false, err
	}
	if c.RESTConfig, c.KubeconfigPath, err = writeKubeconfig(c.Dir, opts.Name, c.APIServerURL, pk); err != nil {
		return c, false, err
	}
	client, err := kubernetes.NewForConfig(c.RESTConfig)
	if err != nil {
		return c, false, fmt.Errorf("build client: %w", err)
	}
	if err := api.waitFor(ctx, "/readyz", func(ctx context.Context) bool {
		_, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil
	}); err != nil {
		return c, false, err
	}

	kcmArgs := []string{
		"--kubeconfig=" + c.KubeconfigPath,
		"--authentication-kubeconfig=" + c.KubeconfigPath,
		"--authorization-kubeconfig=" + c.KubeconfigPath,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(kcmPort),
		"--leader-elect=false",
		"--service-account-private-key-file=" + pk.ServiceAccountKey,
		"--root-ca-file=" + pk.CACert,
		"--cluster-name=" + opts.Name,
		"--v=1",
	}
	if opts.NodeMonitorGracePeriod > 0 {
		kcmArgs = append(kcmArgs, "--node-monitor-grace-period="+opts.NodeMonitorGracePeriod.String())
	}
	kcm, err := c.start("kube-controller-manager", bins.ControllerManager, kcmArgs...)
	if err != nil {
		return c, false, err
	}
	if opts.ControlPlaneOnly {
		if err := c.waitDefaultServiceAccount(ctx, kcm, client); err != nil {
			return c, false, err
		}
		opts.Logger.Info("test-bed control plane ready", "cluster", opts.Name, "apiserver", c.APIServerURL, "kubeconfig", c.KubeconfigPath)
		return c, false, nil
	}
	sched, err := c.start("kube-scheduler", bins.Scheduler,
		"--kubeconfig="+c.KubeconfigPath,
		"--authentication-kubeconfig="+c.KubeconfigPath,
		"--authorization-kubeconfig="+c.KubeconfigPath,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort),
		"--leader-elect=false",
		"--v=1",
	)
	if err != nil {
		return c, false, err
	}
	kwokArgs := []string{
		"--kubeconfig=" + c.KubeconfigPath,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + KwokNodeAnnotation + "=fake",
		"--cidr=10.0.0.0/16", "--node-ip=10.0.0.1",
		// Without leases (kwok's flag default is 0 when no KwokConfiguration is
		// given) the node lifecycle controller sees no heartbeat, marks every
		// node Unknown after its grace period and their pods NotReady.
		"--node-lease-duration-seconds=" + strconv.Itoa(leaseSeconds(opts.NodeMonitorGracePeriod)),
		"--server-address=127.0.0.1:" + strconv.Itoa(kwokPort),
	}
	own, err := writeOwnStages(filepath.Join(c.Dir, "kwok-stages"))
	if err != nil {
		return c, false, err
	}
	for _, s := range append(slices.Clone(bins.KwokStages), own...) {
		kwokArgs = append(kwokArgs, "--config="+s)
	}
	kwok, err := c.start("kwok", bins.Kwok, kwokArgs...)
	if err != nil {
		return c, false, err
	}

	if err := createNodes(ctx, client, opts); err != nil {
		return c, false, err
	}
	if err := kwok.waitFor(ctx, fmt.Sprintf("%d Ready nodes", opts.Nodes), func(ctx context.Context) bool {
		n, err := readyNodes(ctx, client)
		return err == nil && n >= opts.Nodes
	}); err != nil {
		return c, false, err
	}
	if err := c.waitDefaultServiceAccount(ctx, kcm, client); err != nil {
		return c, false, err
	}
	if ok, _ := sched.exited(); ok {
		return c, false, sched.errorf("kube-scheduler ended during cluster start")
	}
	opts.Logger.Info("test-bed cluster ready", "cluster", opts.Name, "apiserver", c.APIServerURL, "nodes", opts.Nodes, "kubeconfig", c.KubeconfigPath)
	return c, false, nil
}

// waitDefaultServiceAccount waits for the controller manager to create the
// default ServiceAccount, without which every Pod create is refused.
func (c *Cluster) waitDefaultServiceAccount(ctx context.Context, kcm *process, client kubernetes.Interface) error {
	return kcm.waitFor(ctx, "the default ServiceAccount", func(ctx context.Context) bool {
		_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1GetOptions)
		return err == nil
	})
}

// leaseSeconds is the kwok node lease duration: 40s like a kubelet's, or,
// under a shorter grace period, the grace period itself, since leases are
// renewed every quarter of their duration and must beat the grace period.
func leaseSeconds(grace time.Duration) int {
	if grace <= 0 || grace >= 160*time.Second {
		return 40
	}
	return max(4, int(grace.Seconds()))
}

func apiServerArgs(pk *pki, etcdPort, apiPort int) []string {
	return []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(etcdPort),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--tls-cert-file=" + pk.ServingCert, "--tls-private-key-file=" + pk.ServingKey,
		"--client-ca-file=" + pk.CACert,
		// The front-proxy settings fill the extension-apiserver-authentication
		// ConfigMap that the controller manager and scheduler read; without
		// them both log an error every few seconds.
		"--requestheader-client-ca-file=" + pk.CACert,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pk.ServiceAccountPub,
		"--service-account-signing-key-file=" + pk.ServiceAccountKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		// A loopback advertise address cannot back the kubernetes Service's
		// endpoints, and nothing in the test bed needs them.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--v=1",
	}
}

// start starts one process of the cluster and records it for Stop.
func (c *Cluster) start(name, binary string, args ...string) (*process, error) {
	p, err := startProcess(name, binary, args, c.Logs)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

// portRace reports whether a process failed because its port was taken.
func (c *Cluster) portRace() bool {
	for _, p := range c.procs {
		if ok, _ := p.exited(); ok && p.portInUse() {
			return true
		}
	}
	return false
}

// Stop ends every process of the cluster, newest first, and removes the
// working directory if StartCluster created it. It is safe to call twice.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		for i := len(c.procs) - 1; i >= 0; i-- {
			c.procs[i].stop(10 * time.Second)
		}
		if c.removeDir {
			_ = os.RemoveAll(c.Dir)
		}
	})
}

// Alive returns an error naming the first process of the cluster that has ended.
func (c *Cluster) Alive() error {
	var errs []error
	for _, p := range c.procs {
		if ok, err := p.exited(); ok {
			errs = append(errs, p.errorf("%s of cluster %q ended: %v", p.name, c.Name, err))
		}
	}
	return errors.Join(errs...)
}

// ProcessRSS returns the resident memory of each of the cluster's processes.
func (c *Cluster) ProcessRSS() (map[string]int64, error) {
	out := make(map[string]int64, len(c.procs))
	for _, p := range c.procs {
		rss, err := p.rssBytes()
		if err != nil {
			return nil, err
		}
		out[p.name] = rss
	}
	return out, nil
}

// PIDs returns the process id of each of the cluster's processes.
func (c *Cluster) PIDs() map[string]int {
	out := make(map[string]int, len(c.procs))
	for _, p := range c.procs {
		out[p.name] = p.cmd.Process.Pid
	}
	return out
}

func httpOK(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func quantityOr(l corev1.ResourceList, name corev1.ResourceName, def string) resource.Quantity {
	if q, ok := l[name]; ok {
		return q
	}
	return resource.MustParse(def)
}
