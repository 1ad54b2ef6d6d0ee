//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//!
//! kubectl's typed commands (`kubectl create namespace|configmap|secret|deployment|service|
//! serviceaccount|role|clusterrole|rolebinding|clusterrolebinding|quota|job|cronjob|ingress|
//! poddisruptionbudget|priorityclass|token`, `kubectl auth can-i|whoami`) send their object in
//! Kubernetes' protobuf encoding instead of JSON. [`decode`] turns such a body into the JSON
//! object it encodes, so the rest of the server only ever sees JSON.
//!
//! A body is the magic `k8s\0` and then a `runtime.Unknown` message: `typeMeta` {apiVersion,
//! kind}, `raw` (the object's own message), `contentEncoding` and `contentType`. The object is
//! read against [`SCHEMA`], a table of the field numbers in the upstream `generated.proto`
//! files, by a small protobuf wire reader. Field numbers that the table does not know are
//! errors, never silently dropped.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Map, Value};

const MAGIC: &[u8] = b"k8s\0";
const PROTOBUF_CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// Deeper than any schema nests (CronJob, the deepest, goes 12 messages down); a body that
/// nests this deep is malformed.
const MAX_DEPTH: usize = 32;

/// The kinds a body may carry, by apiVersion. A kind's message in [`SCHEMA`] is named after it.
const KINDS: &[(&str, &[&str])] = &[
    (
        "v1",
        &[
            "Namespace",
            "ConfigMap",
            "Secret",
            "ServiceAccount",
            "Service",
            "Pod",
            "ResourceQuota",
        ],
    ),
    ("apps/v1", &["Deployment"]),
    (
        "rbac.authorization.k8s.io/v1",
        &["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"],
    ),
    ("batch/v1", &["Job", "CronJob"]),
    ("networking.k8s.io/v1", &["Ingress"]),
    ("policy/v1", &["PodDisruptionBudget"]),
    ("scheduling.k8s.io/v1", &["PriorityClass"]),
    (
        "authentication.k8s.io/v1",
        &["TokenRequest", "SelfSubjectReview"],
    ),
    ("authorization.k8s.io/v1", &["SelfSubjectAccessReview"]),
];

/// The messages, one entry each: `Name: field, field, ...`, wrapped onto indented lines;
/// `#` starts a comment line. A field is `number name [type]`:
/// - `number` is the field's number in the upstream `generated.proto`, `name` its JSON name,
///   or `..` for a struct embedded inline (`json:",inline"`), whose fields join the parent's.
/// - A name ending in `?` keeps a zero value ("", 0, false) found on the wire. gogo-protobuf
///   writes every non-pointer scalar, set or not, and `omitempty` drops the zero ones from
///   JSON; `?` marks Go pointers (on the wire only when set) and fields without `omitempty`.
///   A zero IntOrString is dropped the same way (Go would write `0`, which kube's defaulting
///   treats as unset, as for a Service's `targetPort`), and an unset Time is left out where Go
///   writes `null`.
/// - `type` is `string` when left out, else `bytes` (base64 in JSON), `i32`, `i64`, `bool`, a
///   message, or a well-known type: `Time` (RFC 3339), `IntOrString`, `Quantity`, `RawJson`
///   (FieldsV1) or `ExtraValue` (a list of strings). `[T]` is repeated, `{T}` a map from
///   string to `T`.
///
/// Within a message the fields follow the Go struct, so JSON keys come out in kube's order.
const SCHEMA: &str = "
# k8s.io/apimachinery/pkg/apis/meta/v1
ObjectMeta: 1 name, 2 generateName, 3 namespace, 4 selfLink, 5 uid, 6 resourceVersion,
    7 generation i64, 8 creationTimestamp Time, 9 deletionTimestamp Time,
    10 deletionGracePeriodSeconds? i64, 11 labels {string}, 12 annotations {string},
    13 ownerReferences [OwnerReference], 14 finalizers [string],
    17 managedFields [ManagedFieldsEntry]
OwnerReference: 5 apiVersion?, 1 kind?, 3 name?, 4 uid?, 6 controller? bool,
    7 blockOwnerDeletion? bool
ManagedFieldsEntry: 1 manager, 2 operation, 3 apiVersion, 4 time Time, 6 fieldsType,
    7 fieldsV1 RawJson, 8 subresource
Condition: 1 type?, 2 status?, 3 observedGeneration i64, 4 lastTransitionTime Time, 5 reason?,
    6 message?
LabelSelector: 1 matchLabels {string}, 2 matchExpressions [LabelSelectorRequirement]
LabelSelectorRequirement: 1 key?, 2 operator?, 3 values [string]
FieldSelectorRequirement: 1 key?, 2 operator?, 3 values [string]

# k8s.io/api/core/v1
Namespace: 1 metadata ObjectMeta, 2 spec NamespaceSpec, 3 status NamespaceStatus
ConfigMap: 1 metadata ObjectMeta, 4 immutable? bool, 2 data {string}, 3 binaryData {bytes}
Secret: 1 metadata ObjectMeta, 5 immutable? bool, 2 data {bytes}, 4 stringData {string}, 3 type
ServiceAccount: 1 metadata ObjectMeta, 2 secrets [ObjectReference],
    3 imagePullSecrets [LocalObjectReference], 4 automountServiceAccountToken? bool
Service: 1 metadata ObjectMeta, 2 spec ServiceSpec, 3 status ServiceStatus
Pod: 1 metadata ObjectMeta, 2 spec PodSpec, 3 status PodStatus
ResourceQuota: 1 metadata ObjectMeta, 2 spec ResourceQuotaSpec, 3 status ResourceQuotaStatus
NamespaceSpec: 1 finalizers [string]
NamespaceStatus: 1 phase, 2 conditions [NamespaceCondition]
ObjectReference: 1 kind, 2 namespace, 3 name, 4 uid, 5 apiVersion, 6 resourceVersion,
    7 fieldPath
LocalObjectReference: 1 name?
ServiceSpec: 1 ports [ServicePort], 2 selector {string}, 3 clusterIP, 18 clusterIPs [string],
    4 type, 5 externalIPs [string], 7 sessionAffinity, 8 loadBalancerIP,
    9 loadBalancerSourceRanges [string], 10 externalName, 11 externalTrafficPolicy,
    12 healthCheckNodePort i32, 13 publishNotReadyAddresses bool,
    14 sessionAffinityConfig SessionAffinityConfig, 19 ipFamilies [string], 17 ipFamilyPolicy?,
    20 allocateLoadBalancerNodePorts? bool, 21 loadBalancerClass?, 22 internalTrafficPolicy?,
    23 trafficDistribution?
ServiceStatus: 1 loadBalancer LoadBalancerStatus, 2 conditions [Condition]
PodSpec: 1 volumes [Volume], 20 initContainers [Container], 2 containers [Container],
    34 ephemeralContainers [EphemeralContainer], 3 restartPolicy,
    4 terminationGracePeriodSeconds? i64, 5 activeDeadlineSeconds? i64, 6 dnsPolicy,
    7 nodeSelector {string}, 8 serviceAccountName, 9 serviceAccount,
    21 automountServiceAccountToken? bool, 10 nodeName, 11 hostNetwork bool, 12 hostPID bool,
    13 hostIPC bool, 27 shareProcessNamespace? bool, 14 securityContext PodSecurityContext,
    15 imagePullSecrets [LocalObjectReference], 16 hostname, 17 subdomain, 18 affinity Affinity,
    19 schedulerName, 22 tolerations [Toleration], 23 hostAliases [HostAlias],
    24 priorityClassName, 25 priority? i32, 26 dnsConfig PodDNSConfig,
    28 readinessGates [PodReadinessGate], 29 runtimeClassName?, 30 enableServiceLinks? bool,
    31 preemptionPolicy?, 32 overhead {Quantity},
    33 topologySpreadConstraints [TopologySpreadConstraint], 35 setHostnameAsFQDN? bool,
    36 os PodOS, 37 hostUsers? bool, 38 schedulingGates [PodSchedulingGate],
    39 resourceClaims [PodResourceClaim], 40 resources ResourceRequirements,
    41 hostnameOverride?, 42 workloadRef WorkloadReference
PodStatus: 17 observedGeneration i64, 1 phase, 2 conditions [PodCondition], 3 message, 4 reason,
    11 nominatedNodeName, 5 hostIP, 16 hostIPs [HostIP], 6 podIP, 12 podIPs [PodIP],
    7 startTime Time, 10 initContainerStatuses [ContainerStatus],
    8 containerStatuses [ContainerStatus], 9 qosClass,
    13 ephemeralContainerStatuses [ContainerStatus], 14 resize,
    15 resourceClaimStatuses [PodResourceClaimStatus],
    18 extendedResourceClaimStatus PodExtendedResourceClaimStatus,
    19 allocatedResources {Quantity}, 20 resources ResourceRequirements
ResourceQuotaSpec: 1 hard {Quantity}, 2 scopes [string], 3 scopeSelector ScopeSelector
ResourceQuotaStatus: 1 hard {Quantity}, 2 used {Quantity}
NamespaceCondition: 1 type?, 2 status?, 4 lastTransitionTime Time, 5 reason, 6 message
ServicePort: 1 name, 2 protocol, 6 appProtocol?, 3 port? i32, 4 targetPort IntOrString,
    5 nodePort i32
SessionAffinityConfig: 1 clientIP ClientIPConfig
LoadBalancerStatus: 1 ingress [LoadBalancerIngress]
Volume: 1 name?, 2 .. VolumeSource
Container: 1 name?, 2 image, 3 command [string], 4 args [string], 5 workingDir,
    6 ports [ContainerPort], 19 envFrom [EnvFromSource], 7 env [EnvVar],
    8 resources ResourceRequirements, 23 resizePolicy [ContainerResizePolicy],
    24 restartPolicy?, 25 restartPolicyRules [ContainerRestartRule],
    9 volumeMounts [VolumeMount], 21 volumeDevices [VolumeDevice], 10 livenessProbe Probe,
    11 readinessProbe Probe, 22 startupProbe Probe, 12 lifecycle Lifecycle,
    13 terminationMessagePath, 20 terminationMessagePolicy, 14 imagePullPolicy,
    15 securityContext SecurityContext, 16 stdin bool, 17 stdinOnce bool, 18 tty bool
EphemeralContainer: 1 .. EphemeralContainerCommon, 2 targetContainerName
PodSecurityContext: 1 seLinuxOptions SELinuxOptions,
    8 windowsOptions WindowsSecurityContextOptions, 2 runAsUser? i64, 6 runAsGroup? i64,
    3 runAsNonRoot? bool, 4 supplementalGroups [i64], 12 supplementalGroupsPolicy?,
    5 fsGroup? i64, 7 sysctls [Sysctl], 9 fsGroupChangePolicy?,
    10 seccompProfile SeccompProfile, 11 appArmorProfile AppArmorProfile,
    13 seLinuxChangePolicy?
Affinity: 1 nodeAffinity NodeAffinity, 2 podAffinity PodAffinity,
    3 podAntiAffinity PodAntiAffinity
Toleration: 1 key, 2 operator, 3 value, 4 effect, 5 tolerationSeconds? i64
HostAlias: 1 ip?, 2 hostnames [string]
PodDNSConfig: 1 nameservers [string], 2 searches [string], 3 options [PodDNSConfigOption]
PodReadinessGate: 1 conditionType?
TopologySpreadConstraint: 1 maxSkew? i32, 2 topologyKey?, 3 whenUnsatisfiable?,
    4 labelSelector LabelSelector, 5 minDomains? i32, 6 nodeAffinityPolicy?,
    7 nodeTaintsPolicy?, 8 matchLabelKeys [string]
PodOS: 1 name?
PodSchedulingGate: 1 name?
PodResourceClaim: 1 name?, 3 resourceClaimName?, 4 resourceClaimTemplateName?
ResourceRequirements: 1 limits {Quantity}, 2 requests {Quantity}, 3 claims [ResourceClaim]
WorkloadReference: 1 name, 2 podGroup, 3 podGroupReplicaKey
PodCondition: 1 type?, 7 observedGeneration i64, 2 status?, 3 lastProbeTime Time,
    4 lastTransitionTime Time, 5 reason, 6 message
HostIP: 1 ip?
PodIP: 1 ip?
ContainerStatus: 1 name?, 2 state ContainerState, 3 lastState ContainerState, 4 ready? bool,
    5 restartCount? i32, 6 image?, 7 imageID?, 8 containerID, 9 started? bool,
    10 allocatedResources {Quantity}, 11 resources ResourceRequirements,
    12 volumeMounts [VolumeMountStatus], 13 user ContainerUser,
    14 allocatedResourcesStatus [ResourceStatus], 15 stopSignal?
PodResourceClaimStatus: 1 name?, 2 resourceClaimName?
PodExtendedResourceClaimStatus: 1 requestMappings [ContainerExtendedResourceRequest],
    2 resourceClaimName?
ScopeSelector: 1 matchExpressions [ScopedResourceSelectorRequirement]
PodTemplateSpec: 1 metadata ObjectMeta, 2 spec PodSpec
ClientIPConfig: 1 timeoutSeconds? i32
LoadBalancerIngress: 1 ip, 2 hostname, 3 ipMode?, 4 ports [PortStatus]
VolumeSource: 1 hostPath HostPathVolumeSource, 2 emptyDir EmptyDirVolumeSource,
    3 gcePersistentDisk GCEPersistentDiskVolumeSource,
    4 awsElasticBlockStore AWSElasticBlockStoreVolumeSource, 5 gitRepo GitRepoVolumeSource,
    6 secret SecretVolumeSource, 7 nfs NFSVolumeSource, 8 iscsi ISCSIVolumeSource,
    9 glusterfs GlusterfsVolumeSource,
    10 persistentVolumeClaim PersistentVolumeClaimVolumeSource, 11 rbd RBDVolumeSource,
    12 flexVolume FlexVolumeSource, 13 cinder CinderVolumeSource, 14 cephfs CephFSVolumeSource,
    15 flocker FlockerVolumeSource, 16 downwardAPI DownwardAPIVolumeSource,
    17 fc FCVolumeSource, 18 azureFile AzureFileVolumeSource,
    19 configMap ConfigMapVolumeSource, 20 vsphereVolume VsphereVirtualDiskVolumeSource,
    21 quobyte QuobyteVolumeSource, 22 azureDisk AzureDiskVolumeSource,
    23 photonPersistentDisk PhotonPersistentDiskVolumeSource,
    26 projected ProjectedVolumeSource, 24 portworxVolume PortworxVolumeSource,
    25 scaleIO ScaleIOVolumeSource, 27 storageos StorageOSVolumeSource, 28 csi CSIVolumeSource,
    29 ephemeral EphemeralVolumeSource, 30 image ImageVolumeSource
ContainerPort: 1 name, 2 hostPort i32, 3 containerPort? i32, 4 protocol, 5 hostIP
EnvFromSource: 1 prefix, 2 configMapRef ConfigMapEnvSource, 3 secretRef SecretEnvSource
EnvVar: 1 name?, 2 value, 3 valueFrom EnvVarSource
ContainerResizePolicy: 1 resourceName?, 2 restartPolicy?
ContainerRestartRule: 1 action?, 2 exitCodes ContainerRestartRuleOnExitCodes
VolumeMount: 1 name?, 2 readOnly bool, 7 recursiveReadOnly?, 3 mountPath?, 4 subPath,
    5 mountPropagation?, 6 subPathExpr
VolumeDevice: 1 name?, 2 devicePath?
Probe: 1 .. ProbeHandler, 2 initialDelaySeconds i32, 3 timeoutSeconds i32, 4 periodSeconds i32,
    5 successThreshold i32, 6 failureThreshold i32, 7 terminationGracePeriodSeconds? i64
Lifecycle: 1 postStart LifecycleHandler, 2 preStop LifecycleHandler, 3 stopSignal?
SecurityContext: 1 capabilities Capabilities, 2 privileged? bool,
    3 seLinuxOptions SELinuxOptions, 10 windowsOptions WindowsSecurityContextOptions,
    4 runAsUser? i64, 8 runAsGroup? i64, 5 runAsNonRoot? bool, 6 readOnlyRootFilesystem? bool,
    7 allowPrivilegeEscalation? bool, 9 procMount?, 11 seccompProfile SeccompProfile,
    12 appArmorProfile AppArmorProfile
EphemeralContainerCommon: 1 name?, 2 image, 3 command [string], 4 args [string], 5 workingDir,
    6 ports [ContainerPort], 19 envFrom [EnvFromSource], 7 env [EnvVar],
    8 resources ResourceRequirements, 23 resizePolicy [ContainerResizePolicy],
    24 restartPolicy?, 25 restartPolicyRules [ContainerRestartRule],
    9 volumeMounts [VolumeMount], 21 volumeDevices [VolumeDevice], 10 livenessProbe Probe,
    11 readinessProbe Probe, 22 startupProbe Probe, 12 lifecycle Lifecycle,
    13 terminationMessagePath, 20 terminationMessagePolicy, 14 imagePullPolicy,
    15 securityContext SecurityContext, 16 stdin bool, 17 stdinOnce bool, 18 tty bool
SELinuxOptions: 1 user, 2 role, 3 type, 4 level
WindowsSecurityContextOptions: 1 gmsaCredentialSpecName?, 2 gmsaCredentialSpec?,
    3 runAsUserName?, 4 hostProcess? bool
Sysctl: 1 name?, 2 value?
SeccompProfile: 1 type?, 2 localhostProfile?
AppArmorProfile: 1 type?, 2 localhostProfile?
NodeAffinity: 1 requiredDuringSchedulingIgnoredDuringExecution NodeSelector,
    2 preferredDuringSchedulingIgnoredDuringExecution [PreferredSchedulingTerm]
PodAffinity: 1 requiredDuringSchedulingIgnoredDuringExecution [PodAffinityTerm],
    2 preferredDuringSchedulingIgnoredDuringExecution [WeightedPodAffinityTerm]
PodAntiAffinity: 1 requiredDuringSchedulingIgnoredDuringExecution [PodAffinityTerm],
    2 preferredDuringSchedulingIgnoredDuringExecution [WeightedPodAffinityTerm]
PodDNSConfigOption: 1 name, 2 value?
ResourceClaim: 1 name?, 2 request
ContainerState: 1 waiting ContainerStateWaiting, 2 running ContainerStateRunning,
    3 terminated ContainerStateTerminated
VolumeMountStatus: 1 name?, 2 mountPath?, 3 readOnly bool, 4 recursiveReadOnly?
ContainerUser: 1 linux LinuxContainerUser
ResourceStatus: 1 name?, 2 resources [ResourceHealth]
ContainerExtendedResourceRequest: 1 containerName?, 2 resourceName?, 3 requestName?
ScopedResourceSelectorRequirement: 1 scopeName?, 2 operator?, 3 values [string]
TypedLocalObjectReference: 1 apiGroup?, 2 kind?, 3 name?
PortStatus: 1 port? i32, 2 protocol?, 3 error?
HostPathVolumeSource: 1 path?, 2 type?
EmptyDirVolumeSource: 1 medium, 2 sizeLimit? Quantity
GCEPersistentDiskVolumeSource: 1 pdName?, 2 fsType, 3 partition i32, 4 readOnly bool
AWSElasticBlockStoreVolumeSource: 1 volumeID?, 2 fsType, 3 partition i32, 4 readOnly bool
GitRepoVolumeSource: 1 repository?, 2 revision, 3 directory
SecretVolumeSource: 1 secretName, 2 items [KeyToPath], 3 defaultMode? i32, 4 optional? bool
NFSVolumeSource: 1 server?, 2 path?, 3 readOnly bool
ISCSIVolumeSource: 1 targetPortal?, 2 iqn?, 3 lun? i32, 4 iscsiInterface, 5 fsType,
    6 readOnly bool, 7 portals [string], 8 chapAuthDiscovery bool, 11 chapAuthSession bool,
    10 secretRef LocalObjectReference, 12 initiatorName?
GlusterfsVolumeSource: 1 endpoints?, 2 path?, 3 readOnly bool
PersistentVolumeClaimVolumeSource: 1 claimName?, 2 readOnly bool
RBDVolumeSource: 1 monitors [string], 2 image?, 3 fsType, 4 pool, 5 user, 6 keyring,
    7 secretRef LocalObjectReference, 8 readOnly bool
FlexVolumeSource: 1 driver?, 2 fsType, 3 secretRef LocalObjectReference, 4 readOnly bool,
    5 options {string}
CinderVolumeSource: 1 volumeID?, 2 fsType, 3 readOnly bool, 4 secretRef LocalObjectReference
CephFSVolumeSource: 1 monitors [string], 2 path, 3 user, 4 secretFile,
    5 secretRef LocalObjectReference, 6 readOnly bool
FlockerVolumeSource: 1 datasetName, 2 datasetUUID
DownwardAPIVolumeSource: 1 items [DownwardAPIVolumeFile], 2 defaultMode? i32
FCVolumeSource: 1 targetWWNs [string], 2 lun? i32, 3 fsType, 4 readOnly bool, 5 wwids [string]
AzureFileVolumeSource: 1 secretName?, 2 shareName?, 3 readOnly bool
ConfigMapVolumeSource: 1 .. LocalObjectReference, 2 items [KeyToPath], 3 defaultMode? i32,
    4 optional? bool
VsphereVirtualDiskVolumeSource: 1 volumePath?, 2 fsType, 3 storagePolicyName, 4 storagePolicyID
QuobyteVolumeSource: 1 registry?, 2 volume?, 3 readOnly bool, 4 user, 5 group, 6 tenant
AzureDiskVolumeSource: 1 diskName?, 2 diskURI?, 3 cachingMode?, 4 fsType?, 5 readOnly? bool,
    6 kind?
PhotonPersistentDiskVolumeSource: 1 pdID?, 2 fsType
ProjectedVolumeSource: 1 sources [VolumeProjection], 2 defaultMode? i32
PortworxVolumeSource: 1 volumeID?, 2 fsType, 3 readOnly bool
ScaleIOVolumeSource: 1 gateway?, 2 system?, 3 secretRef LocalObjectReference, 4 sslEnabled bool,
    5 protectionDomain, 6 storagePool, 7 storageMode, 8 volumeName, 9 fsType, 10 readOnly bool
StorageOSVolumeSource: 1 volumeName, 2 volumeNamespace, 3 fsType, 4 readOnly bool,
    5 secretRef LocalObjectReference
CSIVolumeSource: 1 driver?, 2 readOnly? bool, 3 fsType?, 4 volumeAttributes {string},
    5 nodePublishSecretRef LocalObjectReference
EphemeralVolumeSource: 1 volumeClaimTemplate PersistentVolumeClaimTemplate
ImageVolumeSource: 1 reference, 2 pullPolicy
ConfigMapEnvSource: 1 .. LocalObjectReference, 2 optional? bool
SecretEnvSource: 1 .. LocalObjectReference, 2 optional? bool
EnvVarSource: 1 fieldRef ObjectFieldSelector, 2 resourceFieldRef ResourceFieldSelector,
    3 configMapKeyRef ConfigMapKeySelector, 4 secretKeyRef SecretKeySelector,
    5 fileKeyRef FileKeySelector
ContainerRestartRuleOnExitCodes: 1 operator?, 2 values [i32]
ProbeHandler: 1 exec ExecAction, 2 httpGet HTTPGetAction, 3 tcpSocket TCPSocketAction,
    4 grpc GRPCAction
LifecycleHandler: 1 exec ExecAction, 2 httpGet HTTPGetAction, 3 tcpSocket TCPSocketAction,
    4 sleep SleepAction
Capabilities: 1 add [string], 2 drop [string]
NodeSelector: 1 nodeSelectorTerms [NodeSelectorTerm]
PreferredSchedulingTerm: 1 weight? i32, 2 preference NodeSelectorTerm
PodAffinityTerm: 1 labelSelector LabelSelector, 2 namespaces [string], 3 topologyKey?,
    4 namespaceSelector LabelSelector, 5 matchLabelKeys [string], 6 mismatchLabelKeys [string]
WeightedPodAffinityTerm: 1 weight? i32, 2 podAffinityTerm PodAffinityTerm
ContainerStateWaiting: 1 reason, 2 message
ContainerStateRunning: 1 startedAt Time
ContainerStateTerminated: 1 exitCode? i32, 2 signal i32, 3 reason, 4 message, 5 startedAt Time,
    6 finishedAt Time, 7 containerID
LinuxContainerUser: 1 uid? i64, 2 gid? i64, 3 supplementalGroups [i64]
ResourceHealth: 1 resourceID?, 2 health
KeyToPath: 1 key?, 2 path?, 3 mode? i32
DownwardAPIVolumeFile: 1 path?, 2 fieldRef ObjectFieldSelector,
    3 resourceFieldRef ResourceFieldSelector, 4 mode? i32
VolumeProjection: 1 secret SecretProjection, 2 downwardAPI DownwardAPIProjection,
    3 configMap ConfigMapProjection, 4 serviceAccountToken ServiceAccountTokenProjection,
    5 clusterTrustBundle ClusterTrustBundleProjection, 6 podCertificate PodCertificateProjection
PersistentVolumeClaimTemplate: 1 metadata ObjectMeta, 2 spec PersistentVolumeClaimSpec
ObjectFieldSelector: 1 apiVersion, 2 fieldPath?
ResourceFieldSelector: 1 containerName, 2 resource?, 3 divisor Quantity
ConfigMapKeySelector: 1 .. LocalObjectReference, 2 key?, 3 optional? bool
SecretKeySelector: 1 .. LocalObjectReference, 2 key?, 3 optional? bool
FileKeySelector: 1 volumeName?, 2 path?, 3 key?, 4 optional? bool
ExecAction: 1 command [string]
HTTPGetAction: 1 path, 2 port? IntOrString, 3 host, 4 scheme, 5 httpHeaders [HTTPHeader]
TCPSocketAction: 1 port? IntOrString, 2 host
GRPCAction: 1 port? i32, 2 service?
SleepAction: 1 seconds? i64
NodeSelectorTerm: 1 matchExpressions [NodeSelectorRequirement],
    2 matchFields [NodeSelectorRequirement]
SecretProjection: 1 .. LocalObjectReference, 2 items [KeyToPath], 4 optional? bool
DownwardAPIProjection: 1 items [DownwardAPIVolumeFile]
ConfigMapProjection: 1 .. LocalObjectReference, 2 items [KeyToPath], 4 optional? bool
ServiceAccountTokenProjection: 1 audience, 2 expirationSeconds? i64, 3 path?
ClusterTrustBundleProjection: 1 name?, 2 signerName?, 3 labelSelector LabelSelector,
    5 optional? bool, 4 path?
PodCertificateProjection: 1 signerName?, 2 keyType?, 3 maxExpirationSeconds? i32,
    4 credentialBundlePath, 5 keyPath, 6 certificateChainPath, 7 userAnnotations {string}
PersistentVolumeClaimSpec: 1 accessModes [string], 4 selector LabelSelector,
    2 resources VolumeResourceRequirements, 3 volumeName, 5 storageClassName?, 6 volumeMode?,
    7 dataSource TypedLocalObjectReference, 8 dataSourceRef TypedObjectReference,
    9 volumeAttributesClassName?
HTTPHeader: 1 name?, 2 value?
NodeSelectorRequirement: 1 key?, 2 operator?, 3 values [string]
VolumeResourceRequirements: 1 limits {Quantity}, 2 requests {Quantity}
TypedObjectReference: 1 apiGroup?, 2 kind?, 3 name?, 4 namespace?

# k8s.io/api/apps/v1
Deployment: 1 metadata ObjectMeta, 2 spec DeploymentSpec, 3 status DeploymentStatus
DeploymentSpec: 1 replicas? i32, 2 selector LabelSelector, 3 template PodTemplateSpec,
    4 strategy DeploymentStrategy, 5 minReadySeconds i32, 6 revisionHistoryLimit? i32,
    7 paused bool, 9 progressDeadlineSeconds? i32
DeploymentStatus: 1 observedGeneration i64, 2 replicas i32, 3 updatedReplicas i32,
    7 readyReplicas i32, 4 availableReplicas i32, 5 unavailableReplicas i32,
    9 terminatingReplicas? i32, 6 conditions [DeploymentCondition], 8 collisionCount? i32
DeploymentStrategy: 1 type, 2 rollingUpdate RollingUpdateDeployment
DeploymentCondition: 1 type, 2 status, 6 lastUpdateTime Time, 7 lastTransitionTime Time,
    4 reason, 5 message
RollingUpdateDeployment: 1 maxUnavailable? IntOrString, 2 maxSurge? IntOrString

# k8s.io/api/rbac/v1
Role: 1 metadata ObjectMeta, 2 rules [PolicyRule]
ClusterRole: 1 metadata ObjectMeta, 2 rules [PolicyRule], 3 aggregationRule AggregationRule
RoleBinding: 1 metadata ObjectMeta, 2 subjects [Subject], 3 roleRef RoleRef
ClusterRoleBinding: 1 metadata ObjectMeta, 2 subjects [Subject], 3 roleRef RoleRef
PolicyRule: 1 verbs [string], 2 apiGroups [string], 3 resources [string],
    4 resourceNames [string], 5 nonResourceURLs [string]
AggregationRule: 1 clusterRoleSelectors [LabelSelector]
Subject: 1 kind?, 2 apiGroup, 3 name?, 4 namespace
RoleRef: 1 apiGroup?, 2 kind?, 3 name?

# k8s.io/api/batch/v1
Job: 1 metadata ObjectMeta, 2 spec JobSpec, 3 status JobStatus
CronJob: 1 metadata ObjectMeta, 2 spec CronJobSpec, 3 status CronJobStatus
JobSpec: 1 parallelism? i32, 2 completions? i32, 3 activeDeadlineSeconds? i64,
    11 podFailurePolicy PodFailurePolicy, 16 successPolicy SuccessPolicy, 7 backoffLimit? i32,
    12 backoffLimitPerIndex? i32, 13 maxFailedIndexes? i32, 4 selector LabelSelector,
    5 manualSelector? bool, 6 template PodTemplateSpec, 8 ttlSecondsAfterFinished? i32,
    9 completionMode?, 10 suspend? bool, 14 podReplacementPolicy?, 15 managedBy?
JobStatus: 1 conditions [JobCondition], 2 startTime Time, 3 completionTime Time, 4 active i32,
    5 succeeded i32, 6 failed i32, 11 terminating? i32, 7 completedIndexes, 10 failedIndexes?,
    8 uncountedTerminatedPods UncountedTerminatedPods, 9 ready? i32
CronJobSpec: 1 schedule?, 8 timeZone?, 2 startingDeadlineSeconds? i64, 3 concurrencyPolicy,
    4 suspend? bool, 5 jobTemplate JobTemplateSpec, 6 successfulJobsHistoryLimit? i32,
    7 failedJobsHistoryLimit? i32
CronJobStatus: 1 active [ObjectReference], 4 lastScheduleTime Time, 5 lastSuccessfulTime Time
PodFailurePolicy: 1 rules [PodFailurePolicyRule]
SuccessPolicy: 1 rules [SuccessPolicyRule]
JobCondition: 1 type?, 2 status?, 3 lastProbeTime Time, 4 lastTransitionTime Time, 5 reason,
    6 message
UncountedTerminatedPods: 1 succeeded [string], 2 failed [string]
JobTemplateSpec: 1 metadata ObjectMeta, 2 spec JobSpec
PodFailurePolicyRule: 1 action?, 2 onExitCodes PodFailurePolicyOnExitCodesRequirement,
    3 onPodConditions [PodFailurePolicyOnPodConditionsPattern]
SuccessPolicyRule: 1 succeededIndexes?, 2 succeededCount? i32
PodFailurePolicyOnExitCodesRequirement: 1 containerName?, 2 operator?, 3 values [i32]
PodFailurePolicyOnPodConditionsPattern: 1 type?, 2 status

# k8s.io/api/networking/v1
Ingress: 1 metadata ObjectMeta, 2 spec IngressSpec, 3 status IngressStatus
IngressSpec: 4 ingressClassName?, 1 defaultBackend IngressBackend, 2 tls [IngressTLS],
    3 rules [IngressRule]
IngressStatus: 1 loadBalancer IngressLoadBalancerStatus
IngressBackend: 4 service IngressServiceBackend, 3 resource TypedLocalObjectReference
IngressTLS: 1 hosts [string], 2 secretName
IngressRule: 1 host, 2 .. IngressRuleValue
IngressLoadBalancerStatus: 1 ingress [IngressLoadBalancerIngress]
IngressServiceBackend: 1 name?, 2 port ServiceBackendPort
IngressRuleValue: 1 http HTTPIngressRuleValue
IngressLoadBalancerIngress: 1 ip, 2 hostname, 4 ports [IngressPortStatus]
ServiceBackendPort: 1 name, 2 number i32
HTTPIngressRuleValue: 1 paths [HTTPIngressPath]
IngressPortStatus: 1 port? i32, 2 protocol?, 3 error?
HTTPIngressPath: 1 path, 3 pathType?, 2 backend IngressBackend

# k8s.io/api/policy/v1
PodDisruptionBudget: 1 metadata ObjectMeta, 2 spec PodDisruptionBudgetSpec,
    3 status PodDisruptionBudgetStatus
PodDisruptionBudgetSpec: 1 minAvailable? IntOrString, 2 selector LabelSelector,
    3 maxUnavailable? IntOrString, 4 unhealthyPodEvictionPolicy?
PodDisruptionBudgetStatus: 1 observedGeneration i64, 2 disruptedPods {Time},
    3 disruptionsAllowed i32, 4 currentHealthy i32, 5 desiredHealthy i32, 6 expectedPods i32,
    7 conditions [Condition]

# k8s.io/api/scheduling/v1
PriorityClass: 1 metadata ObjectMeta, 2 value? i32, 3 globalDefault bool, 4 description,
    5 preemptionPolicy?

# k8s.io/api/authentication/v1
TokenRequest: 1 metadata ObjectMeta, 2 spec TokenRequestSpec, 3 status TokenRequestStatus
SelfSubjectReview: 1 metadata ObjectMeta, 2 status SelfSubjectReviewStatus
TokenRequestSpec: 1 audiences [string], 4 expirationSeconds? i64,
    3 boundObjectRef BoundObjectReference
TokenRequestStatus: 1 token, 2 expirationTimestamp Time
SelfSubjectReviewStatus: 1 userInfo UserInfo
BoundObjectReference: 1 kind, 2 apiVersion, 3 name, 4 uid
UserInfo: 1 username, 2 uid, 3 groups [string], 4 extra {ExtraValue}

# k8s.io/api/authorization/v1
SelfSubjectAccessReview: 1 metadata ObjectMeta, 2 spec SelfSubjectAccessReviewSpec,
    3 status SubjectAccessReviewStatus
SelfSubjectAccessReviewSpec: 1 resourceAttributes ResourceAttributes,
    2 nonResourceAttributes NonResourceAttributes
SubjectAccessReviewStatus: 1 allowed? bool, 4 denied bool, 2 reason, 3 evaluationError
ResourceAttributes: 1 namespace, 2 verb, 3 group, 4 version, 5 resource, 6 subresource, 7 name,
    8 fieldSelector FieldSelectorAttributes, 9 labelSelector LabelSelectorAttributes
NonResourceAttributes: 1 path, 2 verb
FieldSelectorAttributes: 1 rawSelector, 2 requirements [FieldSelectorRequirement]
LabelSelectorAttributes: 1 rawSelector, 2 requirements [LabelSelectorRequirement]
";

/// Decodes a Kubernetes protobuf request body (the 4-byte magic "k8s\0", then a runtime.Unknown
/// message carrying typeMeta{apiVersion, kind}, raw, contentEncoding, contentType) into the JSON
/// object it encodes, with apiVersion and kind set. Errors name what could not be decoded
/// (unknown kind, unknown field number in message X, malformed wire data) — never panic,
/// whatever the bytes.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let payload = body
        .strip_prefix(MAGIC)
        .ok_or("not a Kubernetes protobuf body: it does not start with \"k8s\\0\"")?;
    let envelope = Envelope::parse(payload).map_err(|e| format!("runtime.Unknown: {e}"))?;
    let known = KINDS.iter().any(|(version, kinds)| {
        *version == envelope.api_version && kinds.contains(&envelope.kind.as_str())
    });
    if !known {
        return Err(format!(
            "unknown kind {:?} in apiVersion {:?}: no protobuf schema for it",
            envelope.kind, envelope.api_version
        ));
    }
    let decoder = Decoder {
        messages: schema()?,
    };
    let fields = decoder.message(&envelope.kind, envelope.raw, 0)?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), Value::String(envelope.api_version));
    object.insert("kind".into(), Value::String(envelope.kind));
    object.extend(fields);
    Ok(Value::Object(object))
}

/// The `runtime.Unknown` wrapper around every protobuf body.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
}

impl<'a> Envelope<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        let mut envelope = Envelope {
            api_version: String::new(),
            kind: String::new(),
            raw: &[],
        };
        for item in Reader::new(bytes) {
            match item? {
                (1, Wire::Bytes(type_meta)) => envelope.read_type_meta(type_meta)?,
                (2, Wire::Bytes(raw)) => envelope.raw = raw,
                (3, Wire::Bytes(b)) if !b.is_empty() => {
                    return Err(format!("unsupported contentEncoding {:?}", text(b)?));
                }
                (4, Wire::Bytes(b)) if !b.is_empty() && b != PROTOBUF_CONTENT_TYPE.as_bytes() => {
                    return Err(format!("unsupported contentType {:?}", text(b)?));
                }
                (3 | 4, Wire::Bytes(_)) => {}
                (number, wire) => return Err(stray("Unknown", number, wire, 4)),
            }
        }
        Ok(envelope)
    }

    fn read_type_meta(&mut self, bytes: &[u8]) -> Result<(), String> {
        for item in Reader::new(bytes) {
            match item? {
                (1, Wire::Bytes(b)) => self.api_version = text(b)?,
                (2, Wire::Bytes(b)) => self.kind = text(b)?,
                (number, wire) => return Err(stray("TypeMeta", number, wire, 2)),
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The schema table, parsed once.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Type {
    String,
    Bytes,
    I32,
    I64,
    Bool,
    /// meta/v1 Time {seconds, nanos}: an RFC 3339 string, to the second as Go writes it.
    Time,
    /// util/intstr IntOrString {type, intVal, strVal}: a number or a string.
    IntOrString,
    /// api/resource Quantity {string}: that string.
    Quantity,
    /// meta/v1 FieldsV1 {Raw}: the JSON document it holds.
    RawJson,
    /// authentication/v1 ExtraValue {repeated items}: a list of strings.
    ExtraValue,
    Message(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Single,
    List,
    Map,
}

#[derive(Debug)]
struct Field {
    number: u64,
    /// The JSON name; empty for an inline struct.
    json: &'static str,
    keep_zero: bool,
    shape: Shape,
    ty: Type,
}

type Messages = HashMap<&'static str, Vec<Field>>;

fn schema() -> Result<&'static Messages, String> {
    static PARSED: OnceLock<Result<Messages, String>> = OnceLock::new();
    PARSED
        .get_or_init(|| parse_schema(SCHEMA).and_then(check_kinds))
        .as_ref()
        .map_err(|e| format!("protobuf schema table is broken: {e}"))
}

fn parse_schema(text: &'static str) -> Result<Messages, String> {
    let mut messages = Messages::new();
    let mut current = None;
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let specs = if line.starts_with(' ') {
            line
        } else {
            let (name, rest) = line
                .split_once(':')
                .ok_or_else(|| format!("no message name in line {line:?}"))?;
            if messages.insert(name, Vec::new()).is_some() {
                return Err(format!("message {name} is defined twice"));
            }
            current = Some(name);
            rest
        };
        let name = current.ok_or("the table starts with a continuation line")?;
        let fields = messages.entry(name).or_default();
        for spec in specs.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            fields.push(parse_field(spec).map_err(|e| format!("message {name}: {e}"))?);
        }
    }
    check_schema(&messages)?;
    Ok(messages)
}

fn parse_field(spec: &'static str) -> Result<Field, String> {
    let mut words = spec.split_whitespace();
    let (Some(number), Some(name), ty, None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(format!("malformed field {spec:?}"));
    };
    let number = number
        .parse()
        .map_err(|_| format!("bad field number in {spec:?}"))?;
    let (json, keep_zero) = match name.strip_suffix('?') {
        Some(json) => (json, true),
        None => (name, false),
    };
    let json = if json == ".." { "" } else { json };
    let (shape, ty) = parse_type(ty.unwrap_or("string"))
        .ok_or_else(|| format!("unknown type in field {spec:?}"))?;
    Ok(Field {
        number,
        json,
        keep_zero,
        shape,
        ty,
    })
}

/// A field's type: `T`, `[T]` (repeated) or `{T}` (map from string).
fn parse_type(text: &'static str) -> Option<(Shape, Type)> {
    let (shape, name) = if let Some(t) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        (Shape::List, t)
    } else if let Some(t) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        (Shape::Map, t)
    } else {
        (Shape::Single, text)
    };
    let ty = match name {
        "string" => Type::String,
        "bytes" => Type::Bytes,
        "i32" => Type::I32,
        "i64" => Type::I64,
        "bool" => Type::Bool,
        "Time" => Type::Time,
        "IntOrString" => Type::IntOrString,
        "Quantity" => Type::Quantity,
        "RawJson" => Type::RawJson,
        "ExtraValue" => Type::ExtraValue,
        message if message.starts_with(char::is_uppercase) => Type::Message(message),
        _ => return None,
    };
    Some((shape, ty))
}

/// Every referenced message exists, numbers are unique, and inline fields are single messages.
fn check_schema(messages: &Messages) -> Result<(), String> {
    for (name, fields) in messages {
        for (i, field) in fields.iter().enumerate() {
            if fields[..i].iter().any(|f| f.number == field.number) {
                return Err(format!("{name} repeats field number {}", field.number));
            }
            if let Type::Message(target) = field.ty {
                if !messages.contains_key(target) {
                    return Err(format!("{name} refers to undefined message {target}"));
                }
            }
            let single_message =
                field.shape == Shape::Single && matches!(field.ty, Type::Message(_));
            if field.json.is_empty() && !single_message {
                return Err(format!(
                    "{name} inlines field {}, not a message",
                    field.number
                ));
            }
        }
    }
    Ok(())
}

/// Every kind has its message.
fn check_kinds(messages: Messages) -> Result<Messages, String> {
    for (version, kinds) in KINDS {
        if let Some(kind) = kinds.iter().find(|kind| !messages.contains_key(*kind)) {
            return Err(format!("kind {version} {kind} has no message"));
        }
    }
    Ok(messages)
}

// ---------------------------------------------------------------------------------------------
// Decoding messages against the schema.

struct Decoder {
    messages: &'static Messages,
}

/// What one field of a message has collected so far.
enum Slot {
    Empty,
    One(Value),
    Many(Vec<Value>),
    Entries(Map<String, Value>),
}

impl Decoder {
    fn message(
        &self,
        name: &str,
        bytes: &[u8],
        depth: usize,
    ) -> Result<Map<String, Value>, String> {
        if depth > MAX_DEPTH {
            return Err(format!("message {name} is nested over {MAX_DEPTH} deep"));
        }
        let fields = self
            .messages
            .get(name)
            .ok_or_else(|| format!("no schema for message {name}"))?;
        let mut slots: Vec<Slot> = fields.iter().map(|_| Slot::Empty).collect();
        for item in Reader::new(bytes) {
            let (number, wire) = item.map_err(|e| format!("message {name}: {e}"))?;
            let index = fields
                .iter()
                .position(|f| f.number == number)
                .ok_or_else(|| format!("unknown field number {number} in message {name}"))?;
            let field = &fields[index];
            self.read(field, wire, &mut slots[index], depth)
                .map_err(|e| format!("{name}.{}: {e}", field.label()))?;
        }
        Ok(assemble(fields, slots))
    }

    fn read(&self, field: &Field, wire: Wire, slot: &mut Slot, depth: usize) -> Result<(), String> {
        match (field.shape, field.ty, wire) {
            (Shape::Single, ty, wire) => {
                *slot = self.value(ty, wire, depth)?.map_or(Slot::Empty, Slot::One);
            }
            (Shape::List, Type::I32 | Type::I64 | Type::Bool, Wire::Bytes(packed)) => {
                let mut reader = Reader::new(packed);
                while !reader.at_end() {
                    slot.push(scalar(field.ty, reader.varint()?));
                }
            }
            (Shape::List, ty, wire) => {
                slot.push(self.value(ty, wire, depth)?.unwrap_or(Value::Null))
            }
            (Shape::Map, ty, wire) => {
                let (key, value) = self.map_entry(ty, wire, depth)?;
                slot.insert(key, value);
            }
        }
        Ok(())
    }

    /// One value of type `ty`; `None` for a value that JSON leaves out (an unset Time).
    fn value(&self, ty: Type, wire: Wire, depth: usize) -> Result<Option<Value>, String> {
        let value = match (ty, wire) {
            (Type::I32 | Type::I64 | Type::Bool, Wire::Varint(raw)) => scalar(ty, raw),
            (Type::String, Wire::Bytes(b)) => Value::String(text(b)?),
            (Type::Bytes, Wire::Bytes(b)) => Value::String(BASE64.encode(b)),
            (Type::Time, Wire::Bytes(b)) => return time(b),
            (Type::RawJson, Wire::Bytes(b)) => return raw_json(b),
            (Type::IntOrString, Wire::Bytes(b)) => int_or_string(b)?,
            (Type::Quantity, Wire::Bytes(b)) => quantity(b)?,
            (Type::ExtraValue, Wire::Bytes(b)) => extra_value(b)?,
            (Type::Message(name), Wire::Bytes(b)) => {
                Value::Object(self.message(name, b, depth + 1)?)
            }
            (ty, wire) => return Err(format!("expected {}, found {}", ty.wire(), wire.describe())),
        };
        Ok(Some(value))
    }

    /// A map entry: a message with the key as field 1 and the value as field 2.
    fn map_entry(&self, ty: Type, wire: Wire, depth: usize) -> Result<(String, Value), String> {
        let Wire::Bytes(bytes) = wire else {
            return Err(format!("expected a map entry, found {}", wire.describe()));
        };
        let (mut key, mut value) = (String::new(), None);
        for item in Reader::new(bytes) {
            match item? {
                (1, Wire::Bytes(b)) => key = text(b)?,
                (2, wire) => value = Some(self.value(ty, wire, depth)?),
                (number, wire) => return Err(stray("map entry", number, wire, 2)),
            }
        }
        let value = match value {
            Some(value) => value,
            None => self.value(ty, ty.empty(), depth)?,
        };
        Ok((key, value.unwrap_or(Value::Null)))
    }
}

impl Slot {
    fn push(&mut self, value: Value) {
        match self {
            Slot::Many(items) => items.push(value),
            other => *other = Slot::Many(vec![value]),
        }
    }

    fn insert(&mut self, key: String, value: Value) {
        match self {
            Slot::Entries(entries) => {
                entries.insert(key, value);
            }
            other => *other = Slot::Entries(Map::from_iter([(key, value)])),
        }
    }
}

impl Field {
    fn label(&self) -> String {
        if self.json.is_empty() {
            format!("(inline field {})", self.number)
        } else {
            self.json.to_owned()
        }
    }
}

impl Type {
    /// How values of this type travel on the wire, for error messages.
    fn wire(self) -> &'static str {
        match self {
            Type::I32 | Type::I64 | Type::Bool => "a varint",
            _ => "length-delimited bytes",
        }
    }

    /// The wire value of an absent map value: the type's zero.
    fn empty(self) -> Wire<'static> {
        match self {
            Type::I32 | Type::I64 | Type::Bool => Wire::Varint(0),
            _ => Wire::Bytes(&[]),
        }
    }
}

/// The JSON object of a message's fields, in schema order, zero scalars dropped as `omitempty`
/// would unless the field keeps them, and inline structs merged in.
fn assemble(fields: &[Field], slots: Vec<Slot>) -> Map<String, Value> {
    let mut object = Map::new();
    for (field, slot) in fields.iter().zip(slots) {
        let value = match slot {
            Slot::Empty => continue,
            Slot::One(value) if is_zero(&value) && !field.keep_zero => continue,
            Slot::One(value) => value,
            Slot::Many(items) => Value::Array(items),
            Slot::Entries(entries) => Value::Object(entries),
        };
        match value {
            Value::Object(inner) if field.json.is_empty() => object.extend(inner),
            value => {
                object.insert(field.json.to_owned(), value);
            }
        }
    }
    object
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Bool(b) => !b,
        _ => false,
    }
}

fn scalar(ty: Type, raw: u64) -> Value {
    match ty {
        Type::Bool => Value::Bool(raw != 0),
        // int32 is sign-extended to 64 bits on the wire; its low half is the value.
        Type::I32 => Value::from(raw as i32),
        _ => Value::from(raw as i64),
    }
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "string is not valid UTF-8".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Well-known messages that JSON writes as plain values.

/// meta/v1 Time: Go writes an unset Time as an empty message and JSON leaves it out.
fn time(bytes: &[u8]) -> Result<Option<Value>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let mut seconds = 0;
    for item in Reader::new(bytes) {
        match item? {
            (1, Wire::Varint(raw)) => seconds = raw as i64,
            (2, Wire::Varint(_)) => {} // nanos: Go's JSON for Time stops at seconds
            (number, wire) => return Err(stray("Time", number, wire, 2)),
        }
    }
    rfc3339(seconds).map(|s| Some(Value::String(s)))
}

fn rfc3339(seconds: i64) -> Result<String, String> {
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    if !(1..=9999).contains(&year) {
        return Err(format!(
            "time {seconds}s since 1970 is outside years 1-9999"
        ));
    }
    let second_of_day = seconds.rem_euclid(86_400);
    let (hour, minute, second) = (
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
    );
    Ok(format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z"
    ))
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // days since 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

fn int_or_string(bytes: &[u8]) -> Result<Value, String> {
    let (mut kind, mut int, mut string) = (0, 0, String::new());
    for item in Reader::new(bytes) {
        match item? {
            (1, Wire::Varint(raw)) => kind = raw,
            (2, Wire::Varint(raw)) => int = raw as i32,
            (3, Wire::Bytes(b)) => string = text(b)?,
            (number, wire) => return Err(stray("IntOrString", number, wire, 3)),
        }
    }
    match kind {
        0 => Ok(Value::from(int)),
        1 => Ok(Value::String(string)),
        other => Err(format!("IntOrString has unknown type {other}")),
    }
}

fn quantity(bytes: &[u8]) -> Result<Value, String> {
    let mut string = None;
    for item in Reader::new(bytes) {
        match item? {
            (1, Wire::Bytes(b)) => string = Some(text(b)?),
            (number, wire) => return Err(stray("Quantity", number, wire, 1)),
        }
    }
    string
        .filter(|s| !s.is_empty())
        .map(Value::String)
        .ok_or_else(|| "Quantity has no value".to_owned())
}

/// meta/v1 FieldsV1, whose one field holds a JSON document; empty means unset.
fn raw_json(bytes: &[u8]) -> Result<Option<Value>, String> {
    let mut raw: &[u8] = &[];
    for item in Reader::new(bytes) {
        match item? {
            (1, Wire::Bytes(b)) => raw = b,
            (number, wire) => return Err(stray("FieldsV1", number, wire, 1)),
        }
    }
    if raw.is_empty() {
        return Ok(None);
    }
    let json = serde_json::from_slice(raw).map_err(|e| format!("FieldsV1 is not JSON: {e}"))?;
    Ok(Some(json))
}

fn extra_value(bytes: &[u8]) -> Result<Value, String> {
    let mut items = Vec::new();
    for item in Reader::new(bytes) {
        match item? {
            (1, Wire::Bytes(b)) => items.push(Value::String(text(b)?)),
            (number, wire) => return Err(stray("ExtraValue", number, wire, 1)),
        }
    }
    Ok(Value::Array(items))
}

/// The error for a field that a fixed message (fields 1..=`last`) does not expect.
fn stray(message: &str, number: u64, wire: Wire, last: u64) -> String {
    if (1..=last).contains(&number) {
        format!("field {number} of message {message} is {}", wire.describe())
    } else {
        format!("unknown field number {number} in message {message}")
    }
}

// ---------------------------------------------------------------------------------------------
// The protobuf wire format.

/// One field's payload, by wire type (groups are refused). No schema field is fixed-width,
/// so those payloads are only skipped over, for the error that names the field.
#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32,
}

impl Wire<'_> {
    fn describe(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "a varint",
            Wire::Fixed64 => "a 64-bit value",
            Wire::Bytes(_) => "length-delimited bytes",
            Wire::Fixed32 => "a 32-bit value",
        }
    }
}

/// Reads the fields of one message; yields `(number, payload)` and stops after an error.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn at_end(&self) -> bool {
        self.rest.is_empty()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0;
        for (i, &byte) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok(value);
            }
        }
        Err(if self.rest.len() < 10 {
            "truncated varint".to_owned()
        } else {
            "varint longer than 10 bytes".to_owned()
        })
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], String> {
        let available = self.rest.len();
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= available)
            .ok_or_else(|| format!("truncated: {len} bytes announced, {available} left"))?;
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn field(&mut self) -> Result<(u64, Wire<'a>), String> {
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 {
            return Err("field number 0".to_owned());
        }
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => self.take(8).map(|_| Wire::Fixed64)?,
            2 => {
                let len = self.varint()?;
                Wire::Bytes(self.take(len)?)
            }
            5 => self.take(4).map(|_| Wire::Fixed32)?,
            3 | 4 => return Err(format!("field {number} is a group, which is not supported")),
            other => return Err(format!("field {number} has invalid wire type {other}")),
        };
        Ok((number, wire))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(u64, Wire<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at_end() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            self.rest = &[];
        }
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Bodies that kubectl v1.32 sent, recorded off the wire; `README.md` beside them names the
    /// command behind each.
    macro_rules! fixture {
        ($name:literal) => {
            (
                $name,
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/protobuf/",
                    $name,
                    ".bin"
                ))
                .as_slice(),
            )
        };
    }

    const FIXTURES: &[(&str, &[u8])] = &[
        fixture!("namespace"),
        fixture!("configmap"),
        fixture!("configmap_binary"),
        fixture!("secret_generic"),
        fixture!("secret_docker_registry"),
        fixture!("deployment"),
        fixture!("deployment_zero_replicas"),
        fixture!("deployment_two_images"),
        fixture!("service_clusterip"),
        fixture!("service_headless"),
        fixture!("service_nodeport"),
        fixture!("service_loadbalancer"),
        fixture!("service_externalname"),
        fixture!("serviceaccount"),
        fixture!("role"),
        fixture!("role_resource_names"),
        fixture!("clusterrole"),
        fixture!("clusterrole_non_resource_urls"),
        fixture!("clusterrole_aggregation"),
        fixture!("rolebinding"),
        fixture!("rolebinding_clusterrole"),
        fixture!("clusterrolebinding"),
        fixture!("quota"),
        fixture!("job"),
        fixture!("cronjob"),
        fixture!("ingress"),
        fixture!("poddisruptionbudget"),
        fixture!("priorityclass"),
        fixture!("token"),
        fixture!("auth_can_i"),
        fixture!("auth_whoami"),
        fixture!("job_from_cronjob_all_fields"),
        fixture!("job_from_cronjob_unset_fields"),
    ];

    fn decoded(name: &str) -> Value {
        let (_, body) = FIXTURES
            .iter()
            .find(|(fixture, _)| *fixture == name)
            .unwrap_or_else(|| panic!("no fixture {name}"));
        decode(body).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn base64_text(value: &Value) -> String {
        let bytes = BASE64.decode(value.as_str().unwrap()).unwrap();
        String::from_utf8(bytes).unwrap()
    }

    // -- encoding helpers for hand-made bodies ------------------------------------------------

    fn varint(mut value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while value >= 0x80 {
            out.push(value as u8 | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
        out
    }

    fn bytes_field(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = varint(number << 3 | 2);
        out.extend(varint(payload.len() as u64));
        out.extend_from_slice(payload);
        out
    }

    fn varint_field(number: u64, value: u64) -> Vec<u8> {
        let mut out = varint(number << 3);
        out.extend(varint(value));
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [
            bytes_field(1, api_version.as_bytes()),
            bytes_field(2, kind.as_bytes()),
        ]
        .concat();
        [
            MAGIC.to_vec(),
            bytes_field(1, &type_meta),
            bytes_field(2, raw),
            bytes_field(3, b""),
            bytes_field(4, b""),
        ]
        .concat()
    }

    fn namespace_with_metadata(metadata: &[u8]) -> Vec<u8> {
        envelope("v1", "Namespace", &bytes_field(1, metadata))
    }

    // -- the schema ----------------------------------------------------------------------------

    #[test]
    fn schema_table_parses_and_is_closed() {
        let messages = schema().expect("schema parses");
        assert!(messages.len() > 150, "{} messages", messages.len());
        for (version, kinds) in KINDS {
            for kind in *kinds {
                assert!(messages.contains_key(kind), "{version} {kind}");
            }
        }
        let object_meta = &messages["ObjectMeta"];
        let labels = object_meta.iter().find(|f| f.json == "labels").unwrap();
        assert_eq!((labels.number, labels.shape), (11, Shape::Map));
    }

    #[test]
    fn schema_parser_rejects_broken_tables() {
        assert!(parse_schema("A: 1 b Missing")
            .unwrap_err()
            .contains("Missing"));
        assert!(parse_schema("A: 1 b, 1 c").unwrap_err().contains("repeats"));
        assert!(parse_schema("A: 1 .. [A]").unwrap_err().contains("inlines"));
        assert!(parse_schema("A: x b").unwrap_err().contains("field number"));
        assert!(parse_schema("  1 b").is_err());
    }

    // -- kubectl's bodies ----------------------------------------------------------------------

    #[test]
    fn create_namespace() {
        let expected = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team-a"}, "spec": {}, "status": {}
        });
        assert_eq!(decoded("namespace"), expected);
    }

    #[test]
    fn create_configmap_from_literals_and_binary_file() {
        let expected = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "app-config", "namespace": "team-a"},
            "data": {"color": "blue", "size": "10"}
        });
        assert_eq!(decoded("configmap"), expected);

        let binary = decoded("configmap_binary");
        assert_eq!(binary["data"], json!({"plain": "text"}));
        let blob = BASE64
            .decode(binary["binaryData"]["blob.bin"].as_str().unwrap())
            .unwrap();
        assert_eq!(blob, b"\x00\x01\x02\xff\xfe binary");
    }

    #[test]
    fn create_secrets() {
        let generic = decoded("secret_generic");
        assert_eq!(generic["metadata"], json!({"name": "db-creds"}));
        assert_eq!(generic["type"], "Opaque");
        assert_eq!(base64_text(&generic["data"]["username"]), "admin");
        assert_eq!(base64_text(&generic["data"]["password"]), "s3cr3t!");

        let docker = decoded("secret_docker_registry");
        assert_eq!(docker["type"], "kubernetes.io/dockerconfigjson");
        let config: Value =
            serde_json::from_str(&base64_text(&docker["data"][".dockerconfigjson"])).unwrap();
        assert_eq!(config["auths"]["registry.example.com"]["username"], "bob");
        assert_eq!(
            config["auths"]["registry.example.com"]["password"],
            "hunter2"
        );
    }

    #[test]
    fn create_deployment() {
        let expected = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx", "image": "nginx:1.27",
                        "ports": [{"containerPort": 80}], "resources": {}
                    }]}
                },
                "strategy": {}
            },
            "status": {}
        });
        assert_eq!(decoded("deployment"), expected);
    }

    #[test]
    fn create_deployment_keeps_zero_replicas_and_every_image() {
        assert_eq!(
            decoded("deployment_zero_replicas")["spec"]["replicas"],
            json!(0)
        );
        let two = decoded("deployment_two_images");
        let containers = &two["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["name"], "busybox");
        assert_eq!(containers[0]["image"], "busybox");
        assert_eq!(containers[1]["name"], "redis");
        assert_eq!(containers[1]["image"], "redis:7");
    }

    #[test]
    fn create_service_clusterip() {
        let expected = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "my-svc", "labels": {"app": "my-svc"}},
            "spec": {
                "ports": [
                    {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "443-8443", "protocol": "TCP", "port": 443, "targetPort": 8443}
                ],
                "selector": {"app": "my-svc"},
                "type": "ClusterIP"
            },
            "status": {"loadBalancer": {}}
        });
        assert_eq!(decoded("service_clusterip"), expected);
    }

    #[test]
    fn create_other_services() {
        let headless = decoded("service_headless");
        assert_eq!(headless["spec"]["clusterIP"], "None");
        assert_eq!(headless["spec"]["ports"][0]["port"], 5432);

        let node_port = decoded("service_nodeport");
        assert_eq!(node_port["spec"]["type"], "NodePort");
        assert_eq!(node_port["spec"]["ports"][0]["nodePort"], 30080);
        assert_eq!(node_port["spec"]["ports"][0]["targetPort"], 8080);

        let balancer = decoded("service_loadbalancer");
        assert_eq!(balancer["spec"]["type"], "LoadBalancer");
        assert_eq!(balancer["spec"]["ports"][0]["port"], 443);

        let external = decoded("service_externalname");
        assert_eq!(external["spec"]["type"], "ExternalName");
        assert_eq!(external["spec"]["externalName"], "db.example.com");
        assert!(external["spec"].get("ports").is_none());
        assert!(
            external["spec"].get("clusterIP").is_none(),
            "unset strings stay out"
        );
    }

    #[test]
    fn create_serviceaccount() {
        let expected = json!({
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder"}
        });
        assert_eq!(decoded("serviceaccount"), expected);
    }

    #[test]
    fn create_roles() {
        let role = decoded("role");
        assert_eq!(role["metadata"]["name"], "pod-reader");
        assert_eq!(
            role["rules"],
            json!([
                {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]},
                {"verbs": ["get", "list", "watch"], "apiGroups": ["apps"], "resources": ["deployments"]}
            ])
        );
        let named = decoded("role_resource_names");
        assert_eq!(
            named["rules"][0]["resourceNames"],
            json!(["app-config", "other"])
        );

        let cluster = decoded("clusterrole");
        assert_eq!(cluster["kind"], "ClusterRole");
        assert_eq!(cluster["rules"][0]["resources"], json!(["nodes", "pods"]));
        let urls = decoded("clusterrole_non_resource_urls");
        assert_eq!(
            urls["rules"],
            json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez"]}])
        );
        let aggregated = decoded("clusterrole_aggregation");
        assert_eq!(
            aggregated["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"],
            json!({"rbac.example.com/aggregate-to-monitoring": "true"})
        );
    }

    #[test]
    fn create_bindings() {
        let binding = decoded("rolebinding");
        assert_eq!(
            binding["subjects"],
            json!([
                {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"},
                {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"},
                {"kind": "ServiceAccount", "name": "builder", "namespace": "team-a"}
            ])
        );
        assert_eq!(
            binding["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"})
        );
        let to_cluster_role = decoded("rolebinding_clusterrole");
        assert_eq!(to_cluster_role["roleRef"]["kind"], "ClusterRole");
        assert_eq!(to_cluster_role["subjects"][0]["name"], "alice");

        let cluster = decoded("clusterrolebinding");
        assert_eq!(cluster["kind"], "ClusterRoleBinding");
        assert_eq!(cluster["roleRef"]["name"], "cluster-admin");
        assert_eq!(cluster["subjects"].as_array().unwrap().len(), 3);
        assert_eq!(cluster["subjects"][2]["namespace"], "kube-system");
    }

    #[test]
    fn create_quota() {
        let quota = decoded("quota");
        assert_eq!(
            quota["spec"],
            json!({
                "hard": {"cpu": "2", "memory": "4Gi", "pods": "10", "requests.storage": "100Gi"},
                "scopes": ["NotTerminating"]
            })
        );
    }

    #[test]
    fn other_kubectl_kinds() {
        let job = decoded("job");
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["command"], json!(["date"]));
        assert_eq!(pod["restartPolicy"], "Never");

        let cron = decoded("cronjob");
        assert_eq!(cron["spec"]["schedule"], "*/5 * * * *");
        assert_eq!(cron["spec"]["jobTemplate"]["metadata"]["name"], "tick");

        let ingress = decoded("ingress");
        let rule = &ingress["spec"]["rules"][0];
        assert_eq!(rule["host"], "example.com");
        assert_eq!(
            rule["http"]["paths"][0]["backend"]["service"],
            json!({"name": "web", "port": {"number": 80}})
        );

        let budget = decoded("poddisruptionbudget");
        assert_eq!(budget["spec"]["minAvailable"], 1);

        let priority = decoded("priorityclass");
        assert_eq!(priority["value"], 1000);
        assert_eq!(priority["description"], "high prio");

        let token = decoded("token");
        assert_eq!(token["spec"]["audiences"], json!(["vault", "api"]));
        assert_eq!(token["spec"]["expirationSeconds"], 3600);
        assert_eq!(token["spec"]["boundObjectRef"]["name"], "mypod");

        let review = decoded("auth_can_i");
        assert_eq!(
            review["spec"]["resourceAttributes"],
            json!({"namespace": "default", "verb": "create", "resource": "pods"})
        );
        assert_eq!(decoded("auth_whoami")["status"], json!({"userInfo": {}}));
    }

    /// `kubectl create job --from=cronjob/...` re-encoded a CronJob whose job template set every
    /// field kubectl v1.32 knows to a non-zero value; decoding must give that template back.
    #[test]
    fn every_pod_template_field_round_trips_through_kubectl() {
        let expected: Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/protobuf/job_from_cronjob_all_fields.json"
        )))
        .unwrap();
        let job = decoded("job_from_cronjob_all_fields");
        assert_eq!(job["spec"], expected);
        let container = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["livenessProbe"]["httpGet"]["port"], "port-port");
        assert_eq!(container["resources"]["limits"]["k1"], "1Gi");
    }

    /// The same with every scalar left unset: gogo-protobuf still writes the non-pointer ones
    /// as zeros, which JSON leaves out unless the field has no `omitempty`.
    #[test]
    fn unset_fields_stay_out_of_the_json() {
        let job = decoded("job_from_cronjob_unset_fields");
        let spec = &job["spec"]["template"]["spec"];
        let container = spec["containers"][0].as_object().unwrap();
        assert_eq!(container["name"], "", "name has no omitempty");
        for absent in ["image", "workingDir", "stdin", "tty", "imagePullPolicy"] {
            assert!(!container.contains_key(absent), "{absent}");
        }
        assert!(!container["securityContext"]
            .as_object()
            .unwrap()
            .contains_key("privileged"));
        assert_eq!(container["ports"], json!([{"containerPort": 0}]));
        for absent in [
            "restartPolicy",
            "hostNetwork",
            "dnsPolicy",
            "terminationGracePeriodSeconds",
        ] {
            assert!(spec.get(absent).is_none(), "{absent}");
        }
        assert_eq!(spec["tolerations"], json!([{}]));
        assert_eq!(job["status"], json!({}));
    }

    // -- hand-made bodies ----------------------------------------------------------------------

    #[test]
    fn time_int_or_string_and_packed_fields() {
        let time = [varint_field(1, 1_704_067_200), varint_field(2, 5)].concat();
        let metadata = [
            bytes_field(1, b"ns"),
            bytes_field(8, &time),
            bytes_field(9, b""),
            varint_field(10, 0),
        ]
        .concat();
        let decoded = decode(&namespace_with_metadata(&metadata)).unwrap();
        assert_eq!(
            decoded["metadata"],
            json!({
                "name": "ns",
                "creationTimestamp": "2024-01-01T00:00:00Z",
                "deletionGracePeriodSeconds": 0
            })
        );

        assert_eq!(rfc3339(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_825_599).unwrap(), "2000-02-29T11:59:59Z");
        assert_eq!(rfc3339(-62_135_596_800).unwrap(), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(253_402_300_799).unwrap(), "9999-12-31T23:59:59Z");
        assert!(rfc3339(253_402_300_800).is_err());
        assert!(rfc3339(i64::MIN).is_err());

        let string_port = [varint_field(1, 1), bytes_field(3, b"http")].concat();
        assert_eq!(int_or_string(&string_port).unwrap(), json!("http"));
        let negative = varint_field(2, (-5i64) as u64);
        assert_eq!(int_or_string(&negative).unwrap(), json!(-5));
        assert!(int_or_string(&varint_field(1, 2)).is_err());

        // PodSecurityContext.supplementalGroups, packed and unpacked.
        let packed: Vec<u8> = [1u64, 2, 300].iter().flat_map(|v| varint(*v)).collect();
        let security = [bytes_field(4, &packed), varint_field(4, 7)].concat();
        let pod = envelope("v1", "Pod", &bytes_field(2, &bytes_field(14, &security)));
        let decoded = decode(&pod).unwrap();
        assert_eq!(
            decoded["spec"]["securityContext"]["supplementalGroups"],
            json!([1, 2, 300, 7])
        );
    }

    #[test]
    fn map_entries_may_lack_key_or_value() {
        let entries = [
            bytes_field(11, &bytes_field(1, b"only-key")),
            bytes_field(11, &bytes_field(2, b"only-value")),
        ]
        .concat();
        let decoded = decode(&namespace_with_metadata(&entries)).unwrap();
        assert_eq!(
            decoded["metadata"]["labels"],
            json!({"only-key": "", "": "only-value"})
        );
    }

    #[test]
    fn unknown_field_numbers_are_errors() {
        let err = decode(&namespace_with_metadata(&varint_field(99, 1))).unwrap_err();
        assert!(
            err.contains("unknown field number 99 in message ObjectMeta"),
            "{err}"
        );
        let err = decode(&envelope("v1", "Namespace", &varint_field(7, 1))).unwrap_err();
        assert!(
            err.contains("unknown field number 7 in message Namespace"),
            "{err}"
        );
        let mut body = namespace_with_metadata(b"");
        body.extend(varint_field(9, 1));
        let err = decode(&body).unwrap_err();
        assert!(
            err.contains("unknown field number 9 in message Unknown"),
            "{err}"
        );
    }

    #[test]
    fn wrong_wire_types_are_errors() {
        let err = decode(&namespace_with_metadata(&varint_field(1, 5))).unwrap_err();
        assert!(err.contains("ObjectMeta.name"), "{err}");
        assert!(
            err.contains("expected length-delimited bytes, found a varint"),
            "{err}"
        );
        let err = decode(&namespace_with_metadata(&bytes_field(7, b"x"))).unwrap_err();
        assert!(err.contains("expected a varint"), "{err}");
        let fixed = [varint(1 << 3 | 1), vec![0; 8]].concat();
        let err = decode(&namespace_with_metadata(&fixed)).unwrap_err();
        assert!(err.contains("found a 64-bit value"), "{err}");
        let group = varint(1 << 3 | 3);
        let err = decode(&namespace_with_metadata(&group)).unwrap_err();
        assert!(err.contains("group"), "{err}");
    }

    #[test]
    fn envelopes_that_are_not_supported() {
        let err = decode(&envelope("v1", "Node", b"")).unwrap_err();
        assert!(err.contains("unknown kind \"Node\""), "{err}");
        let err = decode(&envelope("apps/v1", "Namespace", b"")).unwrap_err();
        assert!(err.contains("unknown kind"), "{err}");
        let mut gzip = namespace_with_metadata(b"");
        gzip.extend(bytes_field(3, b"gzip"));
        assert!(decode(&gzip).unwrap_err().contains("contentEncoding"));
        let mut json_content = namespace_with_metadata(b"");
        json_content.extend(bytes_field(4, b"application/json"));
        assert!(decode(&json_content).unwrap_err().contains("contentType"));
        assert!(decode(b"{\"kind\":\"Namespace\"}")
            .unwrap_err()
            .contains("k8s"));
    }

    #[test]
    fn malformed_wire_data_is_an_error() {
        let cases: &[&[u8]] = &[
            b"",
            b"k8s",
            b"k8s\0\x0a",
            b"k8s\0\x0a\x05ab",
            b"k8s\0\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
            b"k8s\0\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
            b"k8s\0\x00\x01",
            b"k8s\0\x0f",
            b"k8s\0\x0b",
            b"k8s\0\x0a\x03\x0a\x01\xff",
        ];
        for case in cases {
            assert!(decode(case).is_err(), "{case:?}");
        }
        let invalid_utf8 = namespace_with_metadata(&bytes_field(1, b"\xff\xfe"));
        assert!(decode(&invalid_utf8).unwrap_err().contains("UTF-8"));
        let bad_json = bytes_field(17, &bytes_field(7, &bytes_field(1, b"{not json")));
        assert!(decode(&namespace_with_metadata(&bad_json))
            .unwrap_err()
            .contains("FieldsV1"));
    }

    #[test]
    fn every_truncation_of_every_fixture_fails_cleanly() {
        for (name, body) in FIXTURES {
            // A cut leaves a well-formed envelope only between its fields: after typeMeta
            // (an empty object), or among the empty contentEncoding and contentType that end
            // every body.
            assert_eq!(&body[body.len() - 4..], b"\x1a\x00\x22\x00", "{name}");
            let after_type_meta = MAGIC.len() + 2 + usize::from(body[5]);
            for len in 0..body.len() - 4 {
                let result = decode(&body[..len]);
                if len == after_type_meta {
                    assert_eq!(result.unwrap().as_object().unwrap().len(), 2, "{name}");
                } else {
                    assert!(result.is_err(), "{name} cut at {len}");
                }
            }
            for len in body.len() - 4..=body.len() {
                let between_fields = (body.len() - len) % 2 == 0;
                assert_eq!(
                    decode(&body[..len]).is_ok(),
                    between_fields,
                    "{name} cut at {len}"
                );
            }
        }
    }

    #[test]
    fn random_mutations_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        let mut errors = 0;
        for (_, body) in FIXTURES {
            for _ in 0..300 {
                let mut mutated = body.to_vec();
                for _ in 0..=next(3) {
                    let at = next(mutated.len());
                    match next(4) {
                        0 => mutated[at] ^= 1 << next(8),
                        1 => mutated[at] = next(256) as u8,
                        2 => drop(mutated.remove(at)),
                        _ => mutated.insert(at, next(256) as u8),
                    }
                }
                errors += usize::from(decode(&mutated).is_err());
            }
        }
        assert!(errors > 1000, "only {errors} mutated bodies were rejected");
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 42_u64;
        for len in 0..2000 {
            let mut body = MAGIC.to_vec();
            body.extend((0..len % 200).map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 56) as u8
            }));
            let _ = decode(&body);
        }
    }
}
