"""Static pod manifests for the control plane, with kubeadm's flags (reference §11)."""

import yaml

from .config import args_dict
from .hostfs import write_file

MANIFEST_DIR = "/etc/kubernetes/manifests"

# Component versions per Kubernetes minor (kubeadm constants.go; reference §7/§12).
VERSIONS = {
    31: {"etcd": "3.5.15-0", "coredns": "v1.11.3", "pause": "3.10"},
    32: {"etcd": "3.5.16-0", "coredns": "v1.11.3", "pause": "3.10"},
    33: {"etcd": "3.5.21-0", "coredns": "v1.12.0", "pause": "3.10"},
    34: {"etcd": "3.6.4-0", "coredns": "v1.12.1", "pause": "3.10.1"},
}


def minor(v):
    return int(v.lstrip("v").split(".")[1])


def images(cluster):
    """{component: image} as `kubeadm config images list` prints them."""
    repo, v = cluster["imageRepository"], cluster["kubernetesVersion"]
    table = VERSIONS.get(minor(v), VERSIONS[max(VERSIONS)])
    dns = cluster.get("dns") or {}
    dns_repo = dns.get("imageRepository") or repo
    coredns = f"{dns_repo}/coredns/coredns" if dns_repo == "registry.k8s.io" else f"{dns_repo}/coredns"
    etcd_meta = (cluster["etcd"].get("local") or {})
    out = {name: f"{repo}/{name}:{v}" for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                                   "kube-proxy")}
    out["coredns"] = f"{coredns}:{dns.get('imageTag') or table['coredns']}"
    out["pause"] = f"{repo}/pause:{table['pause']}"
    if "external" not in cluster["etcd"]:
        out["etcd"] = f"{etcd_meta.get('imageRepository') or repo}/etcd:{etcd_meta.get('imageTag') or table['etcd']}"
    return out


def _flags(defaults, extra):
    merged = dict(defaults)
    merged.update(args_dict(extra))
    return [f"--{k}={v}" for k, v in merged.items()]


def _pod(name, image, command, flags, probe, annotations=None, volumes=()):
    mounts = [{"name": n, "mountPath": p, "readOnly": ro} for n, p, ro, _ in volumes]
    vols = [{"name": n, "hostPath": {"path": p, "type": t}} for n, p, _, t in volumes]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "kube-system", "labels": {"component": name,
                                                                               "tier": "control-plane"},
                         "annotations": annotations or {}},
            "spec": {"hostNetwork": True, "priorityClassName": "system-node-critical",
                     "priority": 2000001000, "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
                                     "command": [command, *flags], "livenessProbe": probe,
                                     "volumeMounts": mounts}],
                     "volumes": vols},
            "status": {}}


def _probe(host, port, path, scheme="HTTPS"):
    return {"httpGet": {"host": host, "port": port, "path": path, "scheme": scheme}, "initialDelaySeconds": 10,
            "timeoutSeconds": 15, "failureThreshold": 8}


def apiserver(cluster, node, imgs):
    pki, net = cluster["certificatesDir"], cluster["networking"]
    etcd_servers = ",".join(cluster["etcd"]["external"]["endpoints"]) if "external" in cluster["etcd"] \
        else "https://127.0.0.1:2379"
    flags = {
        "advertise-address": node.address, "allow-privileged": "true", "authorization-mode": "Node,RBAC",
        "client-ca-file": f"{pki}/ca.crt", "enable-admission-plugins": "NodeRestriction",
        "enable-bootstrap-token-auth": "true", "etcd-cafile": f"{pki}/etcd/ca.crt",
        "etcd-certfile": f"{pki}/apiserver-etcd-client.crt", "etcd-keyfile": f"{pki}/apiserver-etcd-client.key",
        "etcd-servers": etcd_servers,
        "kubelet-client-certificate": f"{pki}/apiserver-kubelet-client.crt",
        "kubelet-client-key": f"{pki}/apiserver-kubelet-client.key",
        "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
        "proxy-client-cert-file": f"{pki}/front-proxy-client.crt",
        "proxy-client-key-file": f"{pki}/front-proxy-client.key",
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-client-ca-file": f"{pki}/front-proxy-ca.crt",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-", "requestheader-group-headers": "X-Remote-Group",
        "requestheader-username-headers": "X-Remote-User", "secure-port": str(node.bind_port),
        "service-account-issuer": f"https://kubernetes.default.svc.{net['dnsDomain']}",
        "service-account-key-file": f"{pki}/sa.pub", "service-account-signing-key-file": f"{pki}/sa.key",
        "service-cluster-ip-range": net["serviceSubnet"], "tls-cert-file": f"{pki}/apiserver.crt",
        "tls-private-key-file": f"{pki}/apiserver.key"}
    if "external" in cluster["etcd"]:
        ext = cluster["etcd"]["external"]
        flags.update({"etcd-cafile": ext.get("caFile", ""), "etcd-certfile": ext.get("certFile", ""),
                      "etcd-keyfile": ext.get("keyFile", "")})
    ann = {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": f"{node.address}:{node.bind_port}"}
    vols = [("ca-certs", "/etc/ssl/certs", True, "DirectoryOrCreate"), ("k8s-certs", pki, True, "DirectoryOrCreate")]
    return _pod("kube-apiserver", imgs["kube-apiserver"], "kube-apiserver",
                _flags(flags, cluster["apiServer"].get("extraArgs")),
                _probe(node.address, node.bind_port, "/livez"), ann, vols)


def controller_manager(cluster, node, imgs, external_ca):
    pki, net = cluster["certificatesDir"], cluster["networking"]
    conf = "/etc/kubernetes/controller-manager.conf"
    flags = {"authentication-kubeconfig": conf, "authorization-kubeconfig": conf, "bind-address": "127.0.0.1",
             "client-ca-file": f"{pki}/ca.crt", "cluster-name": cluster["clusterName"],
             "cluster-signing-cert-file": "" if external_ca else f"{pki}/ca.crt",
             "cluster-signing-key-file": "" if external_ca else f"{pki}/ca.key",
             "controllers": "*,bootstrapsigner,tokencleaner", "kubeconfig": conf, "leader-elect": "true",
             "requestheader-client-ca-file": f"{pki}/front-proxy-ca.crt", "root-ca-file": f"{pki}/ca.crt",
             "service-account-private-key-file": f"{pki}/sa.key", "use-service-account-credentials": "true"}
    if net.get("podSubnet"):
        flags.update({"allocate-node-cidrs": "true", "cluster-cidr": net["podSubnet"],
                      "service-cluster-ip-range": net["serviceSubnet"]})
    vols = [("k8s-certs", pki, True, "DirectoryOrCreate"), ("kubeconfig", conf, True, "FileOrCreate")]
    return _pod("kube-controller-manager", imgs["kube-controller-manager"], "kube-controller-manager",
                _flags(dict(sorted(flags.items())), cluster["controllerManager"].get("extraArgs")),
                _probe("127.0.0.1", 10257, "/healthz"), volumes=vols)


def scheduler(cluster, node, imgs):
    conf = "/etc/kubernetes/scheduler.conf"
    flags = {"authentication-kubeconfig": conf, "authorization-kubeconfig": conf, "bind-address": "127.0.0.1",
             "kubeconfig": conf, "leader-elect": "true"}
    return _pod("kube-scheduler", imgs["kube-scheduler"], "kube-scheduler",
                _flags(flags, cluster["scheduler"].get("extraArgs")), _probe("127.0.0.1", 10259, "/livez"),
                volumes=[("kubeconfig", conf, True, "FileOrCreate")])


def etcd(cluster, node, imgs, initial_cluster=None):
    pki, local = cluster["certificatesDir"], cluster["etcd"]["local"]
    adv = f"[{node.address}]" if ":" in node.address else node.address
    flags = {"advertise-client-urls": f"https://{adv}:2379", "cert-file": f"{pki}/etcd/server.crt",
             "client-cert-auth": "true", "data-dir": local["dataDir"],
             "initial-advertise-peer-urls": f"https://{adv}:2380",
             "initial-cluster": initial_cluster or f"{node.name}=https://{adv}:2380",
             "key-file": f"{pki}/etcd/server.key", "listen-client-urls": f"https://127.0.0.1:2379,https://{adv}:2379",
             "listen-metrics-urls": "http://127.0.0.1:2381", "listen-peer-urls": f"https://{adv}:2380",
             "name": node.name, "peer-cert-file": f"{pki}/etcd/peer.crt", "peer-client-cert-auth": "true",
             "peer-key-file": f"{pki}/etcd/peer.key", "peer-trusted-ca-file": f"{pki}/etcd/ca.crt",
             "snapshot-count": "10000", "trusted-ca-file": f"{pki}/etcd/ca.crt"}
    if initial_cluster:
        flags["initial-cluster-state"] = "existing"
    ann = {"kubeadm.kubernetes.io/etcd.advertise-client-urls": f"https://{adv}:2379"}
    vols = [("etcd-certs", f"{pki}/etcd", False, "DirectoryOrCreate"),
            ("etcd-data", local["dataDir"], False, "DirectoryOrCreate")]
    return _pod("etcd", imgs["etcd"], "etcd", _flags(dict(sorted(flags.items())), local.get("extraArgs")),
                _probe("127.0.0.1", 2381, "/livez", "HTTP"), ann, vols)


def write(name, pod):
    write_file(f"{MANIFEST_DIR}/{name}.yaml", yaml.safe_dump(pod, sort_keys=False), mode=0o600, dir_mode=0o700)
