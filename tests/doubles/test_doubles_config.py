"""kubeadm's config decoding and validation in the kubeadm double: a config shaped like kubefab's
templates passes; each broken input is refused with kubeadm's words; what real kubeadm accepts
(dual-stack subnets, an unknown kind) is accepted."""

import copy
import subprocess

import pytest
import yaml

from lab.doubles import install_dir, testkit

ADDRESS = "10.0.0.11"


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory):
    return install_dir(tmp_path_factory.mktemp("bin"), version="v1.33.5")


def kubefab_init():
    """The four documents of kubefab's templates/kubeadm/init.yaml, filled in."""
    return [
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
         "bootstrapTokens": [{"token": testkit.new_token(), "ttl": "24h", "description": "kubefab bootstrap token"}],
         "nodeRegistration": {"name": "cp-1", "criSocket": "unix:///var/run/containerd/containerd.sock",
                              "kubeletExtraArgs": [{"name": "node-ip", "value": ADDRESS}],
                              "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
         "localAPIEndpoint": {"advertiseAddress": ADDRESS, "bindPort": 6443}},
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "kubernetesVersion": "v1.33.5",
         "clusterName": "lab", "controlPlaneEndpoint": f"{ADDRESS}:6443", "certificatesDir": "/etc/kubernetes/pki",
         "imageRepository": "registry.k8s.io", "encryptionAlgorithm": "RSA-2048",
         "certificateValidityPeriod": "8760h", "caCertificateValidityPeriod": "87600h",
         "networking": {"serviceSubnet": "10.96.0.0/12", "podSubnet": "10.244.0.0/16", "dnsDomain": "cluster.local"},
         "etcd": {"local": {"dataDir": "/var/lib/etcd"}},
         "apiServer": {"certSANs": ["api.lab.example", "203.0.113.10"],
                       "extraArgs": [{"name": "audit-log-maxage", "value": "30"}]},
         "controllerManager": {"extraArgs": []}, "scheduler": {"extraArgs": []}},
        {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", "cgroupDriver": "systemd",
         "maxPods": 150},
        {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration", "mode": "iptables"}]


def kubefab_join():
    return [{"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration",
             "nodeRegistration": {"name": "w-1", "criSocket": "unix:///var/run/containerd/containerd.sock",
                                  "kubeletExtraArgs": [{"name": "node-ip", "value": "10.0.0.21"}], "taints": []},
             "discovery": {"bootstrapToken": {"apiServerEndpoint": f"{ADDRESS}:6443", "token": testkit.new_token(),
                                              "caCertHashes": ["sha256:" + "ab" * 32]}}}]


def run(bin_dir, root, docs, *args):
    (root / "kubeadm.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return subprocess.run([str(bin_dir / "kubeadm"), *(args or ("config", "validate")), "--config", "/kubeadm.yaml"],
                          env=testkit.double_env(root, bin_dir), capture_output=True, text=True, timeout=60)


def test_kubefabs_init_and_join_configs_validate(bin_dir, tmp_path):
    for docs in (kubefab_init(), kubefab_join()):
        out = run(bin_dir, tmp_path, docs)
        assert out.returncode == 0, out.stderr


def edit(path, value):
    """A mutation of document `path[0]` at the keys that follow; None deletes."""
    def apply(docs):
        target = docs[path[0]]
        for key in path[1:-1]:
            target = target[key]
        if value is None:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return docs
    return apply


REFUSED = [
    ("string port", edit((0, "localAPIEndpoint", "bindPort"), "6443"),
     "json: cannot unmarshal string into Go struct field APIEndpoint.localAPIEndpoint.bindPort of type int32"),
    ("v1beta3 extraArgs shape in v1beta4", edit((1, "apiServer", "extraArgs"), {"audit-log-maxage": "30"}),
     "json: cannot unmarshal object into Go struct field APIServer.apiServer.extraArgs of type []v1beta4.Arg"),
    ("kubeletExtraArgs as a map", edit((0, "nodeRegistration", "kubeletExtraArgs"), {"node-ip": ADDRESS}),
     "json: cannot unmarshal object into Go struct field NodeRegistrationOptions.nodeRegistration.kubeletExtraArgs "
     "of type []v1beta4.Arg"),
    ("string kubelet port", edit((2, "healthzPort"), "10248"),
     "json: cannot unmarshal string into Go struct field KubeletConfiguration.healthzPort of type int32"),
    ("older kubelet config version", edit((2, "apiVersion"), "kubelet.config.k8s.io/v1alpha1"),
     'unexpected apiVersion "kubelet.config.k8s.io/v1alpha1", you may have to do manual conversion to '
     '"kubelet.config.k8s.io/v1beta1" and execute kubeadm again'),
    ("kube-proxy kind typo", edit((3, "kind"), "KubeProxyConfig"),
     'no kind "KubeProxyConfig" is registered for version "kubeproxy.config.k8s.io/v1alpha1"'),
    ("pod subnet smaller than the node mask", edit((1, "networking", "podSubnet"), "10.244.0.0/25"),
     'networking.podSubnet: Invalid value: "10.244.0.0/25": the size of pod subnet with mask 25 is smaller than the '
     "size of node subnet with mask 24"),
    ("service subnet too large", edit((1, "networking", "serviceSubnet"), "10.64.0.0/11"),
     'networking.serviceSubnet: Invalid value: "10.64.0.0/11": specified service subnet is too large; for 32-bit '
     "addresses, the mask must be >= 12"),
    ("service subnet too small", edit((1, "networking", "serviceSubnet"), "10.96.0.0/30"),
     "subnet with 4 address(es) is too small, the minimum is 10"),
    ("two IPv4 pod subnets", edit((1, "networking", "podSubnet"), "10.244.0.0/16,10.245.0.0/16"),
     "expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for dual-stack networking"),
    ("dnsDomain", edit((1, "networking", "dnsDomain"), "Cluster_Local"),
     'networking.dnsDomain: Invalid value: "Cluster_Local": a lowercase RFC 1123 subdomain must consist of'),
    ("certSANs", edit((1, "apiServer", "certSANs"), ["api.lab.example", "not a name"]),
     'apiServer.certSANs: Invalid value: "not a name": altname is not a valid IP address, DNS label or a DNS label '
     "with subdomain wildcards"),
    ("ECDSA-P384 before 1.34", edit((1, "encryptionAlgorithm"), "ECDSA-P384"),
     'encryptionAlgorithm: Invalid value: "ECDSA-P384": Invalid encryption algorithm "ECDSA-P384". Must be one of '
     "[ECDSA-P256 RSA-2048 RSA-3072 RSA-4096]"),
    ("token ttl", edit((0, "bootstrapTokens", 0, "ttl"), "1d"), 'time: unknown unit "d" in duration "1d"'),
    ("token usages", edit((0, "bootstrapTokens", 0, "usages"), ["signing", "join"]),
     'bootstrapTokens.0.usages: Invalid value: []string{"signing", "join"}: invalid bootstrap token usage string: '
     "join, valid usage options: signing,authentication"),
    ("token groups", edit((0, "bootstrapTokens", 0, "groups"), ["system:nodes"]),
     'bootstrap group "system:nodes" is invalid (must match \\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\\z)'),
    ("advertise address", edit((0, "localAPIEndpoint", "advertiseAddress"), "10.0.0"),
     'localAPIEndpoint.advertiseAddress: Invalid value: "10.0.0": ip address is not valid'),
]


@pytest.mark.parametrize("mutate, words", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_a_broken_init_config_is_refused_with_kubeadms_words(bin_dir, tmp_path, mutate, words):
    out = run(bin_dir, tmp_path, mutate(kubefab_init()))
    assert out.returncode == 1
    assert words in out.stderr


JOIN_REFUSED = [
    ("caCertPath", edit((0, "caCertPath"), "ca.pem"),
     'caCertPath: Invalid value: "ca.pem": the ca certificate path must be an absolute path'),
    ("tlsBootstrapToken", edit((0, "discovery", "tlsBootstrapToken"), "not-a-token"),
     'discovery.tlsBootstrapToken: Invalid value: "not-a-token": the bootstrap token is invalid'),
    ("endpoint without port", edit((0, "discovery", "bootstrapToken", "apiServerEndpoint"), ADDRESS),
     f'discovery.bootstrapToken.apiServerEndpoint: Invalid value: "{ADDRESS}": address {ADDRESS}: missing port in '
     "address"),
    ("no CA pin", edit((0, "discovery", "bootstrapToken", "caCertHashes"), None),
     "discovery.bootstrapToken.caCertHashes: Invalid value: \"\": using token-based discovery without caCertHashes "
     "can be unsafe"),
]


@pytest.mark.parametrize("mutate, words", [r[1:] for r in JOIN_REFUSED], ids=[r[0] for r in JOIN_REFUSED])
def test_a_broken_join_config_is_refused_with_kubeadms_words(bin_dir, tmp_path, mutate, words):
    out = run(bin_dir, tmp_path, mutate(kubefab_join()))
    assert out.returncode == 1
    assert words in out.stderr


def test_the_v1beta3_extra_args_shape_is_a_map(bin_dir, tmp_path):
    docs = kubefab_init()[:2]
    for d in docs:
        d["apiVersion"] = "kubeadm.k8s.io/v1beta3"
    for key in ("encryptionAlgorithm", "certificateValidityPeriod", "caCertificateValidityPeriod"):
        del docs[1][key]
    docs[0]["nodeRegistration"]["kubeletExtraArgs"] = {"node-ip": ADDRESS}
    docs[1]["apiServer"]["extraArgs"] = {"audit-log-maxage": "30"}
    docs[1]["controllerManager"] = docs[1]["scheduler"] = {}
    assert run(bin_dir, tmp_path, docs).returncode == 0
    docs[1]["apiServer"]["extraArgs"] = [{"name": "audit-log-maxage", "value": "30"}]
    out = run(bin_dir, tmp_path, docs)
    assert out.returncode == 1
    assert "json: cannot unmarshal array into Go struct field APIServer.apiServer.extraArgs of type " \
           "map[string]string" in out.stderr


def test_dual_stack_subnets_are_accepted(bin_dir, tmp_path):
    docs = kubefab_init()
    docs[1]["networking"].update(podSubnet="10.244.0.0/16,fd00:10:244::/56",
                                 serviceSubnet="10.96.0.0/12,fd00:10:96::/112")
    out = run(bin_dir, tmp_path, docs)
    assert out.returncode == 0, out.stderr
    docs[1]["networking"]["podSubnet"] = "10.244.0.0/16,fd00:10:244::/72"
    out = run(bin_dir, tmp_path, docs)
    assert out.returncode == 1
    assert 'networking.podSubnet: Invalid value: "fd00:10:244::/72": the size of pod subnet with mask 72 is smaller ' \
           "than the size of node subnet with mask 64" in out.stderr


def test_ecdsa_p384_is_known_from_kubeadm_134(tmp_path):
    docs = kubefab_init()
    docs[1].update(encryptionAlgorithm="ECDSA-P384", kubernetesVersion="v1.34.2")
    out = run(install_dir(tmp_path / "bin", version="v1.34.2"), tmp_path, docs)
    assert out.returncode == 0, out.stderr


def test_an_unknown_init_kind_is_ignored_with_a_warning_and_init_goes_on(bin_dir, tmp_path):
    docs = kubefab_init()
    docs[0]["kind"] = "InitConfig"
    out = run(bin_dir, tmp_path, docs, "init", "phase", "certs", "ca")
    assert out.returncode == 0, out.stderr
    assert 'unknown configuration schema.GroupVersionKind{Group:"kubeadm.k8s.io", Version:"v1beta4", ' \
           'Kind:"InitConfig"}' in out.stderr
    assert "[config] WARNING: Ignored configuration document with GroupVersionKind kubeadm.k8s.io/v1beta4, " \
           "Kind=InitConfig" in out.stderr
    assert (tmp_path / "etc/kubernetes/pki/ca.crt").is_file()
    strict = run(bin_dir, tmp_path, docs)
    assert strict.returncode == 1 and "unknown configuration" in strict.stderr


def test_a_newer_kubelet_config_version_is_passed_on_as_is(bin_dir, tmp_path):
    docs = kubefab_init()
    newer = copy.deepcopy(docs)
    newer[2]["apiVersion"] = "kubelet.config.k8s.io/v1"
    out = run(bin_dir, tmp_path, newer)
    assert out.returncode == 0, out.stderr
    assert 'Newer apiVersion "kubelet.config.k8s.io/v1" detected. kubeadm won\'t patch that config but will use ' \
           "it as is" in out.stderr
