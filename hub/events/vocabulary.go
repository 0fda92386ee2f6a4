package events

// The label values the hub gives event counters. An event's reason and its
// involved object's kind are free text chosen by whoever writes to a managed
// cluster's apiserver (any controller, operator or user with events/create),
// not by the hub's operator: taken as label values they would let any
// cluster user mint series without bound in the hub's own /metrics and in
// the store (a loop of 40,000 distinct reasons did exactly that). So labels
// carry only the reasons Kubernetes' own components emit, the well-known
// kinds, and Normal/Warning; anything else counts as Other. The event kept
// in the store keeps its real (length-limited) reason and kind.
//
// Reasons come from k8s.io/kubernetes: pkg/kubelet/events, the scheduler,
// pkg/controller/* (deployment, replicaset, job, cronjob, statefulset,
// daemonset, podautoscaler, volume, service, nodelifecycle), and the
// cluster-autoscaler and node-problem-detector add-ons most clusters run.
// Reviewing this list is reviewing the hub's label budget: add a reason here
// when a shipped rule or dashboard needs it, or with WithExtraReasons when a
// fleet needs it.

// Other is the label value of every reason, type or kind outside the known sets.
const Other = "other"

var knownReasons = newSet(
	// kubelet: containers and images
	"Created", "Started", "Failed", "Killing", "Preempting", "BackOff", "ExceededGracePeriod",
	"Pulling", "Pulled", "InspectFailed", "ErrImageNeverPull",
	// kubelet: pods
	"FailedKillPod", "FailedCreatePodContainer", "NetworkNotReady", "FailedSync", "FailedValidation",
	"FailedPostStartHook", "FailedPreStopHook", "SandboxChanged", "FailedCreatePodSandBox",
	"FailedPodSandBoxStatus", "Unhealthy", "ProbeWarning", "Evicted", "TopologyAffinityError",
	"UnexpectedAdmissionError", "OutOfcpu", "OutOfmemory", "OutOfpods", "NodeAffinity",
	"FailedPrepareDynamicResources",
	// kubelet: volumes
	"FailedAttachVolume", "FailedMount", "FailedUnMount", "FailedMapVolume", "FailedUnmapDevice",
	"AlreadyMountedVolume", "SuccessfulAttachVolume", "SuccessfulMountVolume",
	"VolumeResizeFailed", "VolumeResizeSuccessful", "FileSystemResizeFailed", "FileSystemResizeSuccessful",
	"FailedMountOnFilesystemMismatch", "VolumePermissionChangeInProgress",
	// kubelet: nodes
	"Starting", "NodeReady", "NodeNotReady", "NodeSchedulable", "NodeNotSchedulable", "Rebooted",
	"Shutdown", "KubeletSetupFailed", "NodeAllocatableEnforced", "FailedNodeAllocatableEnforcement",
	"NodeHasSufficientMemory", "NodeHasInsufficientMemory", "NodeHasNoDiskPressure",
	"NodeHasDiskPressure", "NodeHasSufficientPID", "NodeHasInsufficientPID", "EvictionThresholdMet",
	"ContainerGCFailed", "ImageGCFailed", "InvalidDiskCapacity", "FreeDiskSpaceFailed", "SystemOOM",
	"CgroupV1",
	// node lifecycle and IPAM controllers
	"RegisteredNode", "RemovingNode", "DeletingNode", "DeletingAllPods",
	"TaintManagerEviction", "CIDRNotAvailable", "CIDRAssignmentFailed",
	// scheduler
	"Scheduled", "FailedScheduling", "Preempted",
	// workload controllers
	"ScalingReplicaSet", "DeploymentRollback", "DeploymentPaused", "DeploymentResumed",
	"SuccessfulCreate", "FailedCreate", "SuccessfulDelete", "FailedDelete", "SelectingAll",
	"RecreatingFailedPod", "FailedPlacement", "FailedDaemonPod",
	"Completed", "BackoffLimitExceeded", "DeadlineExceeded", "PodFailurePolicy", "Suspended", "Resumed",
	"SawCompletedJob", "UnexpectedJob", "MissingJob", "FailedNeedsStart", "TooManyMissedTimes",
	"InvalidSchedule",
	// horizontal pod autoscaler
	"SuccessfulRescale", "FailedRescale", "FailedGetScale", "FailedComputeMetricsReplicas",
	"FailedGetResourceMetric", "FailedGetPodsMetric", "FailedGetObjectMetric",
	"FailedGetExternalMetric", "FailedGetContainerResourceMetric", "InvalidSelector", "AmbiguousSelector",
	// volume controllers
	"ProvisioningSucceeded", "ProvisioningFailed", "ExternalProvisioning", "Provisioning",
	"WaitForFirstConsumer", "WaitForPodScheduled", "FailedBinding", "VolumeMismatch", "ClaimLost",
	"ClaimMisbound", "VolumeFailedDelete", "VolumeDelete", "VolumeFailedRecycle", "VolumeRecycled",
	"Resizing", "ExternalExpanding", "FileSystemResizeRequired",
	"FailedDetachVolume", "SuccessfulDetachVolume",
	// service and endpoint controllers
	"EnsuringLoadBalancer", "EnsuredLoadBalancer", "SyncLoadBalancerFailed", "UpdatedLoadBalancer",
	"DeletingLoadBalancer", "DeletedLoadBalancer", "UnAvailableLoadBalancer",
	"FailedToUpdateEndpoint", "FailedToUpdateEndpointSlices",
	// disruption, leader election, garbage collection, namespaces
	"NoPods", "CalculateExpectedPodCountFailed", "LeaderElection", "OwnerRefInvalidNamespace",
	// cluster-autoscaler
	"TriggeredScaleUp", "NotTriggerScaleUp", "ScaleDown", "ScaleDownFailed", "ScaleDownEmpty",
	"FailedToScaleUpGroup",
	// node-problem-detector
	"OOMKilling", "KernelOops", "TaskHung", "FilesystemIsReadOnly", "ReadonlyFilesystem",
	"CorruptDockerOverlay2", "ContainerdStart", "KubeletStart", "DockerStart",
)

var knownKinds = newSet(
	"Pod", "Node", "Namespace", "Service", "Endpoints", "EndpointSlice", "ConfigMap", "Secret",
	"ServiceAccount", "PersistentVolume", "PersistentVolumeClaim", "StorageClass", "VolumeAttachment",
	"CSIDriver", "CSINode", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "ReplicationController",
	"Job", "CronJob", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress", "IngressClass",
	"NetworkPolicy", "Lease", "CertificateSigningRequest", "ResourceClaim", "PriorityClass",
	"CustomResourceDefinition", "APIService", "MutatingWebhookConfiguration",
	"ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy",
)

// vocabulary folds reasons, types and kinds into the bounded label sets.
type vocabulary struct {
	reasons, kinds map[string]struct{}
}

func newVocabulary(extraReasons, extraKinds []string) vocabulary {
	v := vocabulary{reasons: knownReasons, kinds: knownKinds}
	if len(extraReasons) > 0 {
		v.reasons = union(knownReasons, extraReasons)
	}
	if len(extraKinds) > 0 {
		v.kinds = union(knownKinds, extraKinds)
	}
	return v
}

// metricLabels are an event's label values after folding.
type metricLabels struct{ reason, typ, kind string }

func (v vocabulary) labels(ev *Event) metricLabels {
	l := metricLabels{reason: Other, typ: Other, kind: Other}
	if _, ok := v.reasons[ev.Reason]; ok {
		l.reason = ev.Reason
	}
	if ev.Type == "Normal" || ev.Type == "Warning" {
		l.typ = ev.Type
	}
	if _, ok := v.kinds[ev.Kind]; ok {
		l.kind = ev.Kind
	}
	return l
}

func newSet(vs ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(vs))
	for _, v := range vs {
		m[v] = struct{}{}
	}
	return m
}

func union(base map[string]struct{}, extra []string) map[string]struct{} {
	m := make(map[string]struct{}, len(base)+len(extra))
	for k := range base {
		m[k] = struct{}{}
	}
	for _, v := range extra {
		if v != "" && len(v) <= maxShortBytes {
			m[v] = struct{}{}
		}
	}
	return m
}

// defaultVocabulary folds events that did not come through a Store.
var defaultVocabulary = newVocabulary(nil, nil)
