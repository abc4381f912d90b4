"""Go types of the configuration kinds the doubles decode: kubeadm.k8s.io v1beta4 and v1beta3
(k/k cmd/kubeadm/app/apis/kubeadm/v1beta4|v1beta3/types.go, bootstraptoken/v1), KubeletConfiguration
(k8s.io/kubelet/config/v1beta1) and KubeProxyConfiguration (k8s.io/kube-proxy/config/v1alpha1).
Field names and types only: what Go's decoder needs to say which field has the wrong type."""

from .gotypes import (ANY, BOOL, DURATION, FLOAT, INT32, INT64, MAP_SB, MAP_SS, STR, STRS, TIME, Go, list_of,
                      named, struct)

TAINT = struct("v1.Taint", key=STR, value=STR, effect=named("v1.TaintEffect"), timeAdded=TIME)
BOOTSTRAP_TOKEN = struct("v1.BootstrapToken", token=named("v1.BootstrapTokenString"), description=STR,
                         ttl=DURATION, expires=TIME, usages=STRS, groups=STRS)


def _kubeadm(v):
    """The kubeadm kinds of version `v` ("v1beta4" or "v1beta3")."""
    v4 = v == "v1beta4"
    args = list_of(struct(f"{v}.Arg", name=STR, value=STR)) if v4 else MAP_SS
    env = list_of(struct(f"{v}.EnvVar", name=STR, value=STR, valueFrom=ANY))
    volumes = list_of(struct(f"{v}.HostPathMount", name=STR, hostPath=STR, mountPath=STR, readOnly=BOOL,
                             pathType=named("v1.HostPathType")))
    component = dict(extraArgs=args, extraVolumes=volumes, **({"extraEnvs": env} if v4 else {}))
    image_meta = dict(imageRepository=STR, imageTag=STR)
    endpoint = struct(f"{v}.APIEndpoint", advertiseAddress=STR, bindPort=INT32)
    timeouts = struct(f"{v}.Timeouts", **{k: DURATION for k in (
        "controlPlaneComponentHealthCheck", "kubeletHealthCheck", "kubernetesAPICall", "etcdAPICall", "tlsBootstrap",
        "discovery", "upgradeManifests")})
    node = struct(f"{v}.NodeRegistrationOptions", name=STR, criSocket=STR, taints=list_of(TAINT),
                  kubeletExtraArgs=args, ignorePreflightErrors=STRS, imagePullPolicy=named("v1.PullPolicy"),
                  **({"imagePullSerial": BOOL} if v4 else {}))
    patches = struct(f"{v}.Patches", directory=STR)
    local_etcd = struct(f"{v}.LocalEtcd", dataDir=STR, extraArgs=args, serverCertSANs=STRS, peerCertSANs=STRS,
                        **image_meta, **({"extraEnvs": env} if v4 else {}))
    external_etcd = struct(f"{v}.ExternalEtcd", endpoints=STRS, caFile=STR, certFile=STR, keyFile=STR)
    api_server = struct(f"{v}.APIServer", certSANs=STRS, **component,
                        **({} if v4 else {"timeoutForControlPlane": DURATION}))
    dns = struct(f"{v}.DNS", **image_meta, **({"disabled": BOOL} if v4 else {}))
    cluster = dict(
        etcd=struct(f"{v}.Etcd", local=local_etcd, external=external_etcd),
        networking=struct(f"{v}.Networking", serviceSubnet=STR, podSubnet=STR, dnsDomain=STR),
        kubernetesVersion=STR, controlPlaneEndpoint=STR, apiServer=api_server,
        controllerManager=struct(f"{v}.ControlPlaneComponent", **component),
        scheduler=struct(f"{v}.ControlPlaneComponent", **component), dns=dns, certificatesDir=STR,
        imageRepository=STR, featureGates=MAP_SB, clusterName=STR)
    init = dict(bootstrapTokens=list_of(BOOTSTRAP_TOKEN), nodeRegistration=node, localAPIEndpoint=endpoint,
                certificateKey=STR, skipPhases=STRS, patches=patches)
    discovery = dict(bootstrapToken=struct(f"{v}.BootstrapTokenDiscovery", token=STR, apiServerEndpoint=STR,
                                           caCertHashes=STRS, unsafeSkipCAVerification=BOOL),
                     file=struct(f"{v}.FileDiscovery", kubeConfigPath=STR), tlsBootstrapToken=STR)
    join = dict(nodeRegistration=node, caCertPath=STR, skipPhases=STRS, patches=patches,
                controlPlane=struct(f"{v}.JoinControlPlane", localAPIEndpoint=endpoint, certificateKey=STR))
    kinds = {}
    if v4:
        cluster.update(proxy=struct(f"{v}.Proxy", disabled=BOOL), encryptionAlgorithm=named(
            f"{v}.EncryptionAlgorithmType"), certificateValidityPeriod=DURATION,
            caCertificateValidityPeriod=DURATION)
        init.update(dryRun=BOOL, timeouts=timeouts)
        join.update(dryRun=BOOL, timeouts=timeouts)
        kinds["ResetConfiguration"] = struct(f"{v}.ResetConfiguration", cleanupTmpDir=BOOL, certificatesDir=STR,
                                             criSocket=STR, dryRun=BOOL, force=BOOL, ignorePreflightErrors=STRS,
                                             skipPhases=STRS, unmountFlags=STRS, timeouts=timeouts)
        kinds["UpgradeConfiguration"] = struct(f"{v}.UpgradeConfiguration", apply=ANY, diff=ANY, node=ANY, plan=ANY,
                                               timeouts=timeouts)
    else:
        discovery["timeout"] = DURATION
    join["discovery"] = struct(f"{v}.Discovery", **discovery)
    kinds.update(InitConfiguration=struct(f"{v}.InitConfiguration", **init),
                 ClusterConfiguration=struct(f"{v}.ClusterConfiguration", **cluster),
                 JoinConfiguration=struct(f"{v}.JoinConfiguration", **join))
    return kinds


KUBEADM = {"v1beta4": _kubeadm("v1beta4"), "v1beta3": _kubeadm("v1beta3")}

_KV = "v1beta1"
KUBELET = struct(
    "v1beta1.KubeletConfiguration",
    enableServer=BOOL, staticPodPath=STR, podLogsDir=STR, syncFrequency=DURATION, fileCheckFrequency=DURATION,
    httpCheckFrequency=DURATION, staticPodURL=STR, staticPodURLHeader=Go("map[string][]string", "map", elem=STRS),
    address=STR, port=INT32, readOnlyPort=INT32, tlsCertFile=STR, tlsPrivateKeyFile=STR, tlsCipherSuites=STRS,
    tlsMinVersion=STR, rotateCertificates=BOOL, serverTLSBootstrap=BOOL,
    authentication=struct(f"{_KV}.KubeletAuthentication",
                          x509=struct(f"{_KV}.KubeletX509Authentication", clientCAFile=STR),
                          webhook=struct(f"{_KV}.KubeletWebhookAuthentication", enabled=BOOL, cacheTTL=DURATION),
                          anonymous=struct(f"{_KV}.KubeletAnonymousAuthentication", enabled=BOOL)),
    authorization=struct(f"{_KV}.KubeletAuthorization", mode=named(f"{_KV}.KubeletAuthorizationMode"),
                         webhook=struct(f"{_KV}.KubeletWebhookAuthorization", cacheAuthorizedTTL=DURATION,
                                        cacheUnauthorizedTTL=DURATION)),
    registryPullQPS=INT32, registryBurst=INT32, imagePullCredentialsVerificationPolicy=STR,
    preloadedImagesVerificationAllowlist=STRS, eventRecordQPS=INT32, eventBurst=INT32,
    enableDebuggingHandlers=BOOL, enableContentionProfiling=BOOL, healthzPort=INT32, healthzBindAddress=STR,
    oomScoreAdj=INT32, clusterDomain=STR, clusterDNS=STRS, streamingConnectionIdleTimeout=DURATION,
    nodeStatusUpdateFrequency=DURATION, nodeStatusReportFrequency=DURATION, nodeLeaseDurationSeconds=INT32,
    imageMinimumGCAge=DURATION, imageMaximumGCAge=DURATION, imageGCHighThresholdPercent=INT32,
    imageGCLowThresholdPercent=INT32, volumeStatsAggPeriod=DURATION, kubeletCgroups=STR, systemCgroups=STR,
    cgroupRoot=STR, cgroupsPerQOS=BOOL, cgroupDriver=STR, cpuManagerPolicy=STR, singleProcessOOMKill=BOOL,
    cpuManagerPolicyOptions=MAP_SS, cpuManagerReconcilePeriod=DURATION, memoryManagerPolicy=STR,
    topologyManagerPolicy=STR, topologyManagerScope=STR, topologyManagerPolicyOptions=MAP_SS, qosReserved=MAP_SS,
    runtimeRequestTimeout=DURATION, hairpinMode=STR, maxPods=INT32, podCIDR=STR, podPidsLimit=INT64,
    resolvConf=STR, runOnce=BOOL, cpuCFSQuota=BOOL, cpuCFSQuotaPeriod=DURATION, nodeStatusMaxImages=INT32,
    maxOpenFiles=INT64, contentType=STR, kubeAPIQPS=INT32, kubeAPIBurst=INT32, serializeImagePulls=BOOL,
    maxParallelImagePulls=INT32, evictionHard=MAP_SS, evictionSoft=MAP_SS, evictionSoftGracePeriod=MAP_SS,
    evictionPressureTransitionPeriod=DURATION, evictionMaxPodGracePeriod=INT32, evictionMinimumReclaim=MAP_SS,
    mergeDefaultEvictionSettings=BOOL, podsPerCore=INT32, enableControllerAttachDetach=BOOL,
    protectKernelDefaults=BOOL, makeIPTablesUtilChains=BOOL, iptablesMasqueradeBit=INT32, iptablesDropBit=INT32,
    featureGates=MAP_SB, failSwapOn=BOOL, memorySwap=struct(f"{_KV}.MemorySwapConfiguration", swapBehavior=STR),
    containerLogMaxSize=STR, containerLogMaxFiles=INT32, containerLogMaxWorkers=INT32,
    containerLogMonitorInterval=DURATION, configMapAndSecretChangeDetectionStrategy=named(
        f"{_KV}.ResourceChangeDetectionStrategy"), systemReserved=MAP_SS, kubeReserved=MAP_SS,
    reservedSystemCPUs=STR, showHiddenMetricsForVersion=STR, systemReservedCgroup=STR, kubeReservedCgroup=STR,
    enforceNodeAllocatable=STRS, allowedUnsafeSysctls=STRS, volumePluginDir=STR, providerID=STR,
    kernelMemcgNotification=BOOL, logging=ANY, enableSystemLogHandler=BOOL, enableSystemLogQuery=BOOL,
    shutdownGracePeriod=DURATION, shutdownGracePeriodCriticalPods=DURATION, shutdownGracePeriodByPodPriority=ANY,
    crashLoopBackOff=ANY, reservedMemory=ANY, enableProfilingHandler=BOOL, enableDebugFlagsHandler=BOOL,
    seccompDefault=BOOL, memoryThrottlingFactor=FLOAT, registerWithTaints=list_of(TAINT), registerNode=BOOL,
    tracing=ANY, localStorageCapacityIsolation=BOOL, containerRuntimeEndpoint=STR, imageServiceEndpoint=STR,
    failCgroupV1=BOOL, userNamespaces=ANY)

_PV = "v1alpha1"
KUBE_PROXY = struct(
    "v1alpha1.KubeProxyConfiguration",
    featureGates=MAP_SB, clientConnection=struct("v1alpha1.ClientConnectionConfiguration", kubeconfig=STR,
                                                 acceptContentTypes=STR, contentType=STR, qps=FLOAT, burst=INT32),
    logging=ANY, hostnameOverride=STR, bindAddress=STR, healthzBindAddress=STR, metricsBindAddress=STR,
    bindAddressHardFail=BOOL, enableProfiling=BOOL, showHiddenMetricsForVersion=STR,
    mode=named(f"{_PV}.ProxyMode"),
    iptables=struct(f"{_PV}.KubeProxyIPTablesConfiguration", masqueradeBit=INT32, masqueradeAll=BOOL,
                    localhostNodePorts=BOOL, syncPeriod=DURATION, minSyncPeriod=DURATION),
    ipvs=struct(f"{_PV}.KubeProxyIPVSConfiguration", syncPeriod=DURATION, minSyncPeriod=DURATION, scheduler=STR,
                excludeCIDRs=STRS, strictARP=BOOL, tcpTimeout=DURATION, tcpFinTimeout=DURATION,
                udpTimeout=DURATION),
    nftables=struct(f"{_PV}.KubeProxyNFTablesConfiguration", masqueradeBit=INT32, masqueradeAll=BOOL,
                    syncPeriod=DURATION, minSyncPeriod=DURATION),
    winkernel=ANY, detectLocalMode=named(f"{_PV}.LocalMode"), detectLocal=ANY, clusterCIDR=STR,
    nodePortAddresses=STRS, oomScoreAdj=INT32,
    conntrack=struct(f"{_PV}.KubeProxyConntrackConfiguration", maxPerCore=INT32, min=INT32,
                     tcpEstablishedTimeout=DURATION, tcpCloseWaitTimeout=DURATION, tcpBeLiberal=BOOL,
                     udpTimeout=DURATION, udpStreamTimeout=DURATION),
    configSyncPeriod=DURATION, portRange=STR, windowsRunAsService=BOOL, syncPeriod=DURATION,
    minSyncPeriod=DURATION)

# Component config groups kubeadm handles, with the one version each understands (componentconfigs/*.go).
COMPONENTS = {"kubelet.config.k8s.io": ("v1beta1", "KubeletConfiguration", KUBELET),
              "kubeproxy.config.k8s.io": ("v1alpha1", "KubeProxyConfiguration", KUBE_PROXY)}
