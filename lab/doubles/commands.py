"""`kubeadm reset`, `token`, `config`, `version` and `certs check-expiration`."""

import json
import shutil
import sys

import yaml

from . import certs, config, controllers, etcdjoin, images, kubelet_setup, manifests
from . import kubeconfig as kc
from . import x509util as xu
from .hostfs import DoubleError, exists, host, log, version
from .kubeadm_util import ADMIN_CONF, new_token, skip_set, skipper
from .kubeclient import Client
from .objects import create_token_secret

# cmd/kubeadm/app/cmd/reset.go: cniCleanupInstructions, iptablesCleanupInstructions (printed after the phases)
CNI_CLEANUP = "\nThe reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d\n"
IPTABLES_CLEANUP = ("\nThe reset process does not reset or clean up iptables rules or IPVS tables.\n"
                    "If you wish to reset iptables, you must do so manually by using the \"iptables\" command.\n\n"
                    "If your cluster was setup to utilize IPVS, run ipvsadm --clear (or similar)\n"
                    "to reset your system's IPVS tables.\n\n"
                    "The reset process does not clean your kubeconfig files and you must remove them manually.\n"
                    "Please, check the contents of the $HOME/.kube/config file.")
RESET_FILES = ("admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf", "controller-manager.conf",
               "scheduler.conf")


def reset(flags):
    docs = config.load(flags["config"], {"ResetConfiguration"}, only={"ResetConfiguration"}) \
        if "config" in flags else {}
    rc = config.reset_configuration(docs)
    force = "force" in flags or "f" in flags or rc.get("force")
    if not force:
        sys.stdout.write("[reset] Are you sure you want to proceed? [y/N]: ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise DoubleError("aborted reset operation")
    skipped = skipper(skip_set(flags, rc))
    cert_dir = flags.get("cert-dir") or rc.get("certificatesDir") or "/etc/kubernetes/pki"
    etcd_manifest = host("/etc/kubernetes/manifests/etcd.yaml")
    data_dir = etcd_data_dir(etcd_manifest)
    if not skipped("remove-etcd-member"):
        remove_etcd_member(etcd_manifest, data_dir, flags.get("kubeconfig", ADMIN_CONF), int(flags.get("v", "0")))
    log("[reset] Stopping the kubelet service")
    kubelet_setup.stop_kubelet()
    if not skipped("remove-etcd-member"):
        # the double's etcd is a process of the kubelet: what it wrote until it stopped goes too
        empty_dir(data_dir)
    log('[reset] Unmounting mounted directories in "/var/lib/kubelet"')
    dirs = ["/etc/kubernetes/manifests", "/var/lib/kubelet", cert_dir]
    if "cleanup-tmp-dir" in flags or rc.get("cleanupTmpDir"):
        dirs.append("/etc/kubernetes/tmp")
    log(f"[reset] Deleting contents of directories: [{' '.join(dirs)}]")
    for d in dirs:
        empty_dir(d)
    for f in RESET_FILES:
        host(f"/etc/kubernetes/{f}").unlink(missing_ok=True)
    log("[reset] Deleting files: [" + " ".join(f"/etc/kubernetes/{f}" for f in RESET_FILES) + "]")
    log(CNI_CLEANUP + IPTABLES_CLEANUP)


def remove_etcd_member(manifest, data_dir, kubeconfig, verbosity):
    """remove-etcd-member: a stacked member leaves the etcd cluster (best effort); the data directory of a
    local etcd (the manifest's etcd-data volume, else kubeadm's default) is emptied either way."""
    if manifest.is_file():
        etcdjoin.remove_self(manifest, kubeconfig, verbosity)
    d = host(data_dir)
    if d.is_dir() and any(d.iterdir()):
        empty_dir(data_dir)
        log(f"[reset] Deleted contents of the etcd data directory: {data_dir}")


def etcd_data_dir(manifest):
    try:
        pod = yaml.safe_load(manifest.read_text())
    except (FileNotFoundError, yaml.YAMLError):
        return "/var/lib/etcd"
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if volume.get("name") == "etcd-data" and "hostPath" in volume:
            return volume["hostPath"]["path"]
    return "/var/lib/etcd"


def empty_dir(path):
    d = host(path)
    if not d.is_dir():
        return
    for child in d.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def token(flags, args):
    sub = args[0] if args else ""
    client = Client.from_kubeconfig(flags.get("kubeconfig", ADMIN_CONF))
    if sub == "create":
        value = args[1] if len(args) > 1 else new_token()
        if not config.TOKEN_RE.match(value):
            raise DoubleError(f'the bootstrap token "{value}" was not of the form '
                              '"^([a-z0-9]{6})\\.([a-z0-9]{16})$"')
        t = {"token": value, "ttl": flags.get("ttl", "24h"), "description": flags.get("description", "")}
        if flags.get("usages"):
            t["usages"] = flags["usages"].split(",")
        if flags.get("groups"):
            t["groups"] = flags["groups"].split(",")
        create_token_secret(client, t)
        controllers.sign_cluster_info(client)
        if "print-join-command" in flags:
            config_ = kc.load(flags.get("kubeconfig", ADMIN_CONF))
            cluster, _ = kc.current(config_)
            ca = xu.parse_certs(kc.ca_data(cluster))[0]
            endpoint = cluster["server"].removeprefix("https://")
            log(f"kubeadm join {endpoint} --token {value} --discovery-token-ca-cert-hash {xu.spki_pin(ca)} ")
        else:
            log(value)
    elif sub == "list":
        log("TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION")
        for tid, tsec, data in controllers.tokens(client):
            usages = ",".join(k[16:] for k in data if k.startswith("usage-bootstrap-"))
            log(f"{tid}.{tsec}   -   {data.get('expiration', '<forever>')}   {usages}   {data.get('description', '')}")
    elif sub == "delete":
        for value in args[1:]:
            client.delete(f"/api/v1/namespaces/kube-system/secrets/bootstrap-token-{value.split('.')[0]}")
            log(f"bootstrap token \"{value.split('.')[0]}\" deleted")
    else:
        raise DoubleError(f"unknown command \"{sub}\" for \"kubeadm token\"")


def config_cmd(flags, args):
    if args[:2] in (["images", "list"], ["images", "pull"]):
        if "config" in flags:
            docs = config.load(flags["config"], {"InitConfiguration", "ClusterConfiguration"})
            cluster = config.default_cluster(docs.get("ClusterConfiguration"))
        else:
            cluster = config.default_cluster({"kubernetesVersion": flags.get("kubernetes-version", version()),
                                              "imageRepository": flags.get("image-repository", "registry.k8s.io")})
        config.validate_version(cluster["kubernetesVersion"], version())
        refs = list(manifests.images(cluster).values())
        if args[1] == "pull":
            images.pull(refs, flags.get("cri-socket", images.SOCKET).removeprefix("unix://"))
        for image in refs:
            log(f"[config/images] Pulled {image}" if args[1] == "pull" else image)
    elif args[:1] == ["validate"]:
        docs = config.load(flags["config"], {"InitConfiguration", "ClusterConfiguration", "JoinConfiguration",
                                             "ResetConfiguration", "UpgradeConfiguration"}, strict_errors=True)
        if "InitConfiguration" in docs or "ClusterConfiguration" in docs:
            config.init_configuration(docs)
        if "JoinConfiguration" in docs:
            config.join_configuration(docs)
        log("ok")
    else:
        raise DoubleError(f"unknown command \"{' '.join(args)}\" for \"kubeadm config\"")


def version_info():
    v = version()
    major, minor = v.lstrip("v").split(".")[:2]
    return {"major": major, "minor": minor, "gitVersion": v, "gitCommit": "kubefab-double", "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc", "platform": "linux/amd64"}


def version_cmd(flags):
    out, info = flags.get("output") or flags.get("o") or "", version_info()
    if out == "short":
        log(info["gitVersion"])
    elif out == "json":
        log(json.dumps({"clientVersion": info}, indent=2))
    elif out == "yaml":
        log(yaml.safe_dump({"clientVersion": info}, sort_keys=False).rstrip())
    elif out == "":
        fields = ", ".join(f'{k[0].upper() + k[1:]}:"{v}"' for k, v in info.items())
        log(f"kubeadm version: &version.Info{{{fields}}}")
    else:
        raise DoubleError(f"invalid output format: {out}")


def check_expiration(flags):
    cert_dir = flags.get("cert-dir", "/etc/kubernetes/pki")
    rows, ca_rows = [], []
    now = xu.now()
    for conf in ("admin.conf", "controller-manager.conf", "scheduler.conf", "super-admin.conf"):
        if exists(f"/etc/kubernetes/{conf}"):
            _, user = kc.current(kc.load(f"/etc/kubernetes/{conf}"))
            cert, _, _ = kc.client_material(user)
            if cert:
                rows.append((conf, xu.parse_certs(cert)[0], "ca"))
    for spec in certs.CERTS:
        path = f"{cert_dir}/{spec.base}.crt"
        if exists(path):
            (rows if spec.ca else ca_rows).append((spec.base, xu.load_cert(path), spec.ca))
    fmt = "{:<26} {:<24} {:<15} {:<23} {}"
    log(fmt.format("CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED"))
    for name, cert, ca in rows:
        left = cert.not_valid_after_utc - now
        log(fmt.format(name, cert.not_valid_after_utc.strftime("%b %d, %Y %H:%M UTC"), f"{left.days}d",
                       ca.replace("etcd/ca", "etcd-ca"), "no"))
    log("\n" + "{:<24} {:<24} {:<15} {}".format("CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME",
                                                "EXTERNALLY MANAGED"))
    for name, cert, _ in ca_rows:
        left = cert.not_valid_after_utc - now
        external = "no" if exists(f"{cert_dir}/{name}.key") else "yes"
        log("{:<24} {:<24} {:<15} {}".format(name.replace("etcd/ca", "etcd-ca"),
                                             cert.not_valid_after_utc.strftime("%b %d, %Y %H:%M UTC"),
                                             f"{left.days // 365}y", external))
