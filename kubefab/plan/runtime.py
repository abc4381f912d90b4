"""The runtime phase: everything a host needs before kubeadm, each step checking first.

Every Command here has a guard that is true once the host matches, so a second run reports every
step `unchanged`; with facts, each also says why it is already `done` when the facts show it, and then
it does not run at all (a host whose every step is done is not even connected to). The rendered runtime
files (containerd config, sysctl and modules-load files, crictl.yaml, registry hosts) and, for the
offline source, the binaries and unit files are pushed by one Push step, only those not in place; the
steps after it act on what it changed.
"""

import hashlib

from kubefab import paths
from kubefab.components import addons, kubeadm, requirements
from kubefab.facts import PACKAGES
from kubefab.inventory import ha
from kubefab.plan import offline, render
from kubefab.steps import UNCHANGED_EXIT, Command, push, q, unless

MANAGERS = {"apt-get": "apt"}       # the facts name the command; the install scripts name the family
CRI_SOCKET = kubeadm.CRI_SOCKET
PORTS = {"control-plane": ("6443/tcp", "2379-2380/tcp", "10250/tcp", "10257/tcp", "10259/tcp"),
         "worker": ("10250/tcp", "10256/tcp", "30000-32767/tcp")}
CNI_PORTS = {"flannel": ("8472/udp",), "calico": ("179/tcp", "4789/udp")}


def steps(inv, host, bundle, facts):
    """The runtime steps of `host`, in order; those the facts show satisfied are marked done."""
    files = tuple(f for f in bundle.files[host.name] if f.phase == "runtime")
    pushed = push("files", files, facts)
    changing = {f.path for f in pushed.files}
    return (_hostname(host, facts), _etc_hosts(inv, bundle, facts), *_required(inv, _swap(facts)), pushed,
            *_required(inv, _modules(inv, facts), _sysctls(files, facts)), _selinux(facts),
            _firewalld(inv, host, facts), *_install(inv, files, facts, changing), _containerd(facts, changing),
            _kubelet(files, facts, changing), *_load_balancer(inv, host, files), _images(inv, facts),
            *_addon_images(inv, facts))


def install(inv, host, bundle, facts):
    """The install source's steps alone (cluster.upgrade): the offline directory's files pushed and linked, or the
    inventory's version from its minor's package repository, pinned and held; then the versions checked."""
    files = tuple(f for f in bundle.files[host.name] if f.phase == "runtime" and f.source.startswith("offline:"))
    pushed = push("binaries", files, facts)
    return (*((pushed,) if files else ()), *_install(inv, files, facts, {f.path for f in pushed.files}))


def upgrade_containerd(inv, facts):
    """cluster.upgrade --runtime on one host: containerd upgraded where the install source has it from (packages:
    the host's own sources, as cluster.up installed it there; offline: the directory carries no containerd, so the
    installed one stays and is restarted), then restarted and checked active; the versions before and after said."""
    hint = "containerd could not be upgraded from this host's sources (the package manager's words above)"
    manager = facts and MANAGERS.get(facts.os.package_manager, facts.os.package_manager)
    by_manager = {"apt": f"export DEBIAN_FRONTEND=noninteractive && kf_pm {q(hint)} apt-get update -q && "
                         f"kf_pm {q(hint)} apt-get install -qy --only-upgrade containerd",
                  "dnf": f"kf_pm {q(hint)} dnf upgrade -qy containerd",
                  "yum": f"kf_pm {q(hint)} yum update -qy containerd"}
    chosen = by_manager.get(manager) or (f"if command -v apt-get >/dev/null; then {by_manager['apt']}; elif "
                                         f"command -v dnf >/dev/null; then {by_manager['dnf']}; else "
                                         f"{by_manager['yum']}; fi")
    upgrade = "true" if inv.install.source == "offline" else chosen
    version = "containerd --version | awk '{print $3}'"
    script = (f"{KF_PM}before=$({version}) && {upgrade} && systemctl restart containerd && "
              f"systemctl is-active -q containerd && echo \"containerd $before -> $({version}), restarted\"")
    how = ("the offline directory carries none: the installed containerd restarted" if inv.install.source == "offline"
           else f"{manager or 'apt or dnf'}: containerd upgraded from the host's sources, restarted")
    return Command("upgrade containerd", script, timeout=900, label=how)


def links(files):
    """The links the offline install makes in /usr/bin: what the facts look at for its `link binaries` step."""
    return tuple(f"{offline.BIN}/{n}" for n in offline.commands(files))


def _hostname(host, facts):
    name = q(host.name)
    step = Command("hostname", f"echo {name} > /etc/hostname && hostname {name}",
                   guard=f'[ "$(hostname)" = {name} ] && [ "$(cat /etc/hostname)" = {name} ]',
                   label=f"hostname {host.name} (and /etc/hostname)")
    return unless(step, facts and facts.hostname == facts.etc_hostname == host.name and f"hostname is {host.name}")


def hosts_block(inv):
    """kubefab's block of node names for /etc/hosts, its marker lines included, and the sha256 of its lines."""
    block = "".join(f"{line}\n" for line in (paths.HOSTS_BEGIN, *(f"{h.internal_address} {h.name}" for h in inv.hosts),
                                              paths.HOSTS_END))
    return block, hashlib.sha256(block.encode()).hexdigest()


def _etc_hosts(inv, bundle, facts):
    # the block travels once, on the step's standard input, and is shared by every host's step: a guard or a
    # script holding it would make the plan grow with the square of the fleet
    block, digest = bundle.hosts_block
    current = f"sed -n '/^{paths.HOSTS_BEGIN}$/,/^{paths.HOSTS_END}$/p' /etc/hosts"
    script = (f"{{ sed '/^{paths.HOSTS_BEGIN}$/,/^{paths.HOSTS_END}$/d' /etc/hosts; cat; }}"
              " > /etc/hosts.kubefab-new && chmod 644 /etc/hosts.kubefab-new && "
              # a bind-mounted /etc/hosts (containers) cannot be renamed over: write it in place then
              "{ mv -f /etc/hosts.kubefab-new /etc/hosts 2>/dev/null || "
              "{ cat /etc/hosts.kubefab-new > /etc/hosts && rm -f /etc/hosts.kubefab-new; }; }")
    guard = f'h=$({current} | sha256sum) && [ "${{h%% *}}" = {digest} ]'
    step = Command("/etc/hosts", script, stdin=block, guard=guard,
                   label=f"/etc/hosts: a kubefab block naming all {len(inv.hosts)} nodes")
    return unless(step, facts and facts.hosts_block == digest and f"/etc/hosts names all {len(inv.hosts)} nodes")


def _required(inv, *steps):
    """Those of `steps` (a requirement's) that the requirements table asks of the runtime phase on `inv`."""
    needed = requirements.fixing(inv)
    return tuple(s for s in steps if s.name in needed)


def _swap(facts):
    fstab = r"^[^#].*[[:space:]]swap[[:space:]]"
    script = ("swapoff -a && { [ ! -f /etc/fstab ] || sed -i -E "
              f"'s/({fstab[1:]}.*)$/# \\1  # kubefab: the kubelet needs swap off/' /etc/fstab; }}")
    step = Command(requirements.SWAP_OFF, script, label="swapoff -a; comment out swap in /etc/fstab",
                   guard=f"[ $(awk 'NR > 1' /proc/swaps | wc -l) -eq 0 ] && ! grep -Eqs '{fstab}' /etc/fstab")
    return unless(step, facts and not facts.swaps and not facts.fstab_swaps and "no swap, none in /etc/fstab")


def _modules(inv, facts):
    mods = render.kernel_modules(inv)
    loaded = " && ".join(f"{{ grep -q {q(f'^{m} ')} /proc/modules || grep -qs {q(f'/{m}.ko')} "
                         f"/lib/modules/$(uname -r)/modules.builtin; }}" for m in mods)
    step = Command(requirements.KERNEL_MODULES, f"modprobe -a {' '.join(q(m) for m in mods)}", guard=loaded)
    held = facts and all(facts.modules.get(m) in ("loaded", "builtin") for m in mods)
    return unless(step, held and f"{', '.join(mods)} loaded")


def _sysctl_values(files):
    values = {}
    for f in files:
        if f.path in requirements.persisted(requirements.SYSCTLS):
            for line in f.local.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and not line.lstrip().startswith(("#", ";")):
                    values[key.strip()] = value.strip()
    return values


def _sysctls(files, facts):
    paths = [f.path for f in files if f.path in requirements.persisted(requirements.SYSCTLS)]
    values = _sysctl_values(files)
    guard = " && ".join(f'[ "$(sysctl -n {q(k)})" = {q(v)} ]' for k, v in values.items())
    # only kubefab's own files: `sysctl --system` would re-apply every file on the host and fails
    # where an unrelated key is read-only (containers, hardened hosts)
    script = " && ".join(f"sysctl -p {q(p)}" for p in paths)
    off = [f"{k} is {facts.sysctls.get(k) or 'unset'}, kubefab's file sets {v}" for k, v in values.items()
           if facts and facts.sysctls.get(k) != v]
    step = Command(requirements.SYSCTLS, script, guard=guard or "true",
                   label=f"{script} ({'; '.join(off)})" if off else "")
    return unless(step, facts and not off and "every sysctl as kubefab's files set it")


def _selinux(facts):
    step = Command("SELinux permissive",
                   "setenforce 0; sed -i 's/^SELINUX=enforcing/SELINUX=permissive/' /etc/selinux/config",
                   guard="! command -v getenforce || { [ \"$(getenforce)\" != Enforcing ] && "
                         "! grep -qs '^SELINUX=enforcing' /etc/selinux/config; }",
                   label="where SELinux enforces: setenforce 0, SELINUX=permissive")
    held = facts and facts.selinux != "enforcing" and facts.selinux_config != "enforcing"
    return unless(step, held and f"SELinux {facts.selinux}")


def _firewalld(inv, host, facts):
    ports = sorted({p for role in host.roles for p in PORTS[role]} | set(CNI_PORTS.get(inv.cluster.cni, ())))
    listed = " ".join(ports)
    script = f"for p in {listed}; do firewall-cmd -q --permanent --add-port=$p || exit 1; done; firewall-cmd -q --reload"
    guard = ("! systemctl is-active -q firewalld || { have=\" $(firewall-cmd --permanent --list-ports) \"; "
             f"for p in {listed}; do case $have in *\" $p \"*) ;; *) exit 1;; esac; done; }}")
    step = Command("firewalld ports", script, guard=guard, label=f"where firewalld runs: open {listed}")
    return unless(step, facts and facts.firewalld != "active" and "firewalld is not running")


def _install(inv, files, facts, changing):
    if inv.install.source == "offline":
        return _offline(inv, files, facts, changing)
    return _packages(inv, facts and MANAGERS.get(facts.os.package_manager, facts.os.package_manager), facts)


def _offline(inv, files, facts, changing):
    names = offline.commands(files)
    guard = " && ".join(f'[ "$(readlink {q(f"{offline.BIN}/{n}")})" = {q(f"{offline.HOME}/{n}")} ]' for n in names)
    link = Command("link binaries", " && ".join(f"ln -sfn {q(f'{offline.HOME}/{n}')} {q(f'{offline.BIN}/{n}')}"
                                                for n in names),
                   guard=guard, label=f"link {', '.join(names)} into {offline.BIN}")
    linked = facts and all(facts.links.get(f"{offline.BIN}/{n}") == f"{offline.HOME}/{n}" for n in names)
    # what was just linked or pushed may differ from what the facts saw: the checks run then
    fresh = not linked or any(p.startswith(offline.HOME) for p in changing)
    return (unless(link, linked and f"{', '.join(names)} linked"), _versions(inv, None if fresh else facts),
            _runtime_present(facts))


def _has_versions(inv, facts, names):
    return facts and all(facts.versions[n] == inv.cluster.kubernetes_version for n in names)


def _versions(inv, facts):
    want = f"v{inv.cluster.kubernetes_version}"
    script = (f'want={q(want)}; a=$(kubeadm version -o short) && l=$(kubelet --version) || exit 1; '
              '[ "$a" = "$want" ] || { echo "kubeadm is $a, the inventory wants $want"; exit 1; }; '
              'case "$l" in *" $want") ;; *) echo "kubelet is $l, the inventory wants $want"; exit 1;; esac; '
              f'exit {UNCHANGED_EXIT}')
    step = Command("check versions", script, label=f"kubeadm and kubelet report {want}", check=True)
    return unless(step, _has_versions(inv, facts, ("kubeadm", "kubelet")) and f"kubeadm and kubelet are {want}")


def _runtime_present(facts):
    script = ("for c in containerd runc ctr; do command -v $c >/dev/null || { echo \"$c is not installed: put it "
              "in the offline directory or install it\"; exit 1; }; done; exit " + str(UNCHANGED_EXIT))
    step = Command("containerd and runc present", script, label="containerd, runc and ctr are installed",
                   check=True)
    return unless(step, _runtime_found(facts) and "containerd, runc and ctr are installed")


def _runtime_found(facts):
    return facts and facts.versions["containerd"] and facts.versions["runc"] and facts.commands["ctr"]


APT_KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.asc"   # armored: apt reads it as is, no gpg needed
APT_LIST = "/etc/apt/sources.list.d/kubernetes.list"
YUM_REPO = "/etc/yum.repos.d/kubernetes.repo"
APT_HELPER = "/usr/lib/apt/apt-helper"   # apt's own downloader: no curl needed, apt's proxy settings apply
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
HELD = "hold ok installed"              # dpkg's status of a held, installed package
# Runs apt or dnf quietly; when it fails, shows its last lines and then what to do ($1), and returns 1 (apt's
# own failure, 100, is a step's "nothing to do").
KF_PM = """kf_pm() {
  kf_hint=$1; shift
  kf_out=$("$@" 2>&1) && return 0
  printf '%s\\n' "$kf_out" | tail -n 8
  printf '%s\\n' "$kf_hint"
  return 1
}
"""


def repo_url(inv):
    """The package repository of the inventory's minor: `[mirrors] package_repository` + /v1.<minor>."""
    return f"{inv.mirrors.package_repository.rstrip('/')}/v1.{inv.cluster.minor}"


def _apt(inv):
    deb, version = f"{repo_url(inv)}/deb/", inv.cluster.kubernetes_version
    pins = " ".join(q(f"{p}={version}-*") for p in PACKAGES)
    restricted = (f"-o Dir::Etc::sourcelist={q(APT_LIST)} -o Dir::Etc::sourceparts=- "
                  "-o APT::Get::List-Cleanup=0")
    fetch = (f"could not fetch {deb}Release.key — check [mirrors] package_repository and that this host reaches "
             "it (network, proxy)")
    verify = (f"apt could not read {deb} or its signature does not verify with its Release.key — check [mirrors] "
              "package_repository: a mirror must serve pkgs.k8s.io's signed files unchanged")
    runtime = ("containerd is not installed and apt could not install it from this host's sources (apt's words "
               "above) — install containerd, or add a source that has it")
    # only where containerd is missing are the host's own sources read: a box whose lists were never fetched
    # (Vagrant boxes ship none) needs them for containerd; otherwise apt reads the Kubernetes list alone
    containerd = (f"if command -v containerd >/dev/null; then kf_pm {q(verify)} apt-get update -q {restricted}; "
                  f"else kf_pm {q(verify)} apt-get update -q && kf_pm {q(runtime)} apt-get install -qy containerd; fi")
    return KF_PM + " && ".join((
        "export DEBIAN_FRONTEND=noninteractive", *_ca_certificates(deb),
        f"mkdir -p -m 755 {q(APT_KEYRING.rsplit('/', 1)[0])}",
        f"kf_pm {q(fetch)} {q(APT_HELPER)} -o APT::Sandbox::User=root download-file {q(deb + 'Release.key')} "
        f"{q(APT_KEYRING + '.new')}",
        f"chmod 644 {q(APT_KEYRING + '.new')} && mv -f {q(APT_KEYRING + '.new')} {q(APT_KEYRING)}",
        f"printf '%s\\n' {q(f'deb [signed-by={APT_KEYRING}] {deb} /')} > {q(APT_LIST)}",
        containerd,
        f"kf_pm {q(_missing(inv, deb))} apt-get install -qy --allow-change-held-packages --allow-downgrades {pins}",
        f"apt-mark hold {' '.join(q(p) for p in PACKAGES)} >/dev/null"))


def _missing(inv, url):
    return (f"{url} has no kubeadm, kubelet and kubectl {inv.cluster.kubernetes_version} — check kubernetes_version "
            f"for a typo, or bring the mirror up to date (pkgs.k8s.io holds every patch release of "
            f"v1.{inv.cluster.minor})")


def _ca_certificates(deb):
    """apt verifies an https:// repository's certificate with the host's CA bundle: install it where missing."""
    if not deb.startswith("https://"):
        return ()
    hint = (f"{deb} is https:// and this host has no CA certificates ({CA_BUNDLE}), which apt could not install "
            "from the host's own sources — install ca-certificates, or serve the mirror over http://")
    return (f"{{ [ -s {q(CA_BUNDLE)} ] || kf_pm {q(hint)} sh -c "
            f"{q('apt-get update -q && apt-get install -qy --no-install-recommends ca-certificates')}; }}",)


def _dnf(inv, tool):
    rpm, version = f"{repo_url(inv)}/rpm/", inv.cluster.kubernetes_version
    repo = (f"[kubernetes]\nname=Kubernetes\nbaseurl={rpm}\nenabled=1\ngpgcheck=1\n"
            f"gpgkey={rpm}repodata/repomd.xml.key\nexclude={' '.join(PACKAGES)} cri-tools kubernetes-cni\n")
    # RHEL and its rebuilds carry no containerd: Docker's repository has it (containerd.io)
    runtime = (f"containerd is not installed and {tool} found none in this host's repositories — on RHEL-family "
               "hosts add Docker's repository (its package is containerd.io) or install containerd first")
    # the exclude line is the hold: nothing upgrades them unless --disableexcludes names the repo
    return KF_PM + " && ".join((
        f"mkdir -p {q(YUM_REPO.rsplit('/', 1)[0])}", f"printf '%s' {q(repo)} > {q(YUM_REPO)}",
        f"{{ command -v containerd >/dev/null || kf_pm {q(runtime)} {q(tool)} install -qy containerd; }}",
        f"kf_pm {q(_missing(inv, rpm))} {q(tool)} install -qy --disableexcludes=kubernetes "
        f"{' '.join(q(f'{p}-{version}') for p in PACKAGES)}"))


def install_script(inv, manager):
    """The packages source's install script for `manager` (apt, dnf, yum; another: the host's own chooses)."""
    by_manager = {"apt": lambda: _apt(inv), "dnf": lambda: _dnf(inv, "dnf"), "yum": lambda: _dnf(inv, "yum")}
    if manager in by_manager:
        return by_manager[manager]()
    return (f"if command -v apt-get >/dev/null; then {_apt(inv)}; elif command -v dnf >/dev/null; then "
            f"{_dnf(inv, 'dnf')}; else {_dnf(inv, 'yum')}; fi")


def _packages(inv, manager, facts):
    version = inv.cluster.kubernetes_version
    script = install_script(inv, manager)
    v = q(f"v{version}")
    held = " ".join([HELD] * len(PACKAGES))
    guard = (f"command -v containerd && command -v runc && [ \"$(kubeadm version -o short)\" = {v} ] && "
             f"[ \"$(kubelet --version)\" = \"Kubernetes \"{v} ] && kubectl version --client | grep -qxF "
             f"\"Client Version: \"{v} && {{ ! command -v dpkg-query || [ \"$(dpkg-query -W -f '${{Status}} ' "
             f"{' '.join(q(p) for p in PACKAGES)})\" = {q(held + ' ')} ]; }}")
    install = Command("install packages", script, guard=guard, timeout=1200,
                      label=f"{manager or 'apt or dnf'}: containerd, {', '.join(PACKAGES)} {version} from "
                            f"{repo_url(inv)}, held")
    ready = (_has_versions(inv, facts, PACKAGES) and facts.versions["containerd"] and facts.versions["runc"]
             and (manager != "apt" or facts.held >= set(PACKAGES)))
    return (unless(install, ready and f"containerd, {', '.join(PACKAGES)} {version} installed and held"),)


def _containerd(facts, changing):
    step = Command("containerd running", "systemctl enable -q containerd && systemctl restart containerd",
                   guard="systemctl is-enabled -q containerd && systemctl is-active -q containerd",
                   after=(paths.CONTAINERD_CONFIG,), label="enable containerd; restart it when its config changed")
    held = (facts and (facts.containerd_service, facts.containerd_active) == ("enabled", "active")
            and not changing & set(step.after))
    return unless(step, held and "containerd enabled and running, its config in place")


def _kubelet(files, facts, changing):
    units = tuple(f.path for f in files if f.path.startswith(offline.UNIT))
    step = Command("kubelet enabled", "systemctl daemon-reload && systemctl enable -q kubelet",
                   guard="systemctl is-enabled -q kubelet", after=units,
                   label="systemctl enable kubelet (daemon-reload when its unit changed)")
    held = facts and facts.kubelet_service == "enabled" and not changing & set(units)
    return unless(step, held and "kubelet enabled, its unit in place")


def _load_balancer(inv, host, files):
    """keepalived mode, on a control plane: Debian's (or the distribution's) keepalived and haproxy (and socat)
    installed, from the offline directory's .debs with `source = "offline"`, and running with kubefab's configs,
    before kubeadm needs the endpoint they serve."""
    if not (inv.ha and inv.ha.mode == "keepalived" and host.is_control_plane):
        return ()
    names = " ".join(ha.PACKAGES)
    guard = " && ".join(f"command -v {n}" for n in ha.PACKAGES)
    if inv.install.source == "offline":
        debs = " ".join(q(d) for d in offline.debs(files))
        hint = (f"{names} could not be installed from the offline directory's debs/ — add the dependencies this host "
                "lacks there (`apt-get download` them)")
        install = Command("keepalived and haproxy installed",
                          KF_PM + "command -v apt-get >/dev/null || { echo 'the offline directory holds .debs: this "
                          "host has no apt-get'; exit 1; }; export DEBIAN_FRONTEND=noninteractive && "
                          f"kf_pm {q(hint)} apt-get install -qy --no-install-recommends {debs}",
                          guard=guard, timeout=600,
                          label=f"install {names} from the offline directory's debs/ where missing")
    else:
        hint = (f"{names} could not be installed from this host's package sources — install them, or add a source "
                "that has them")
        install = Command("keepalived and haproxy installed",
                          KF_PM + f"if command -v apt-get >/dev/null; then export DEBIAN_FRONTEND=noninteractive && "
                          f"kf_pm {q(hint)} apt-get install -qy {names}; else kf_pm {q(hint)} dnf install -qy "
                          f"{names}; fi", guard=guard, timeout=600,
                          label=f"install {names} from the distribution's packages where missing")
    # the interface is the host's, not the inventory's: keepalived.conf includes the file naming it
    found = (f"kf_if=$(ip -o addr show | awk -v a={q(host.internal_address)} '{{split($4, p, \"/\")}} "
             f"p[1] == a {{print $2; exit}}')")
    current = f'[ "$(cat {paths.KEEPALIVED_INTERFACE} 2>/dev/null)" = "interface $kf_if" ]'
    keepalived = Command(
        "keepalived running",
        f"{found} && [ -n \"$kf_if\" ] || {{ echo {q(f'no interface of this host carries {host.internal_address}')}; "
        f"exit 1; }}; {current} || printf 'interface %s\\n' \"$kf_if\" > {paths.KEEPALIVED_INTERFACE}; "
        "systemctl enable -q keepalived && systemctl restart keepalived",
        guard=f"{found} && {current} && systemctl is-enabled -q keepalived && systemctl is-active -q keepalived",
        after=(paths.KEEPALIVED_CONFIG,),
        label=f"keepalived holding {inv.ha.vip} with the other control planes (restarted when its config changed)")
    haproxy = Command("haproxy running", "systemctl enable -q haproxy && systemctl reload-or-restart haproxy",
                      guard="systemctl is-enabled -q haproxy && systemctl is-active -q haproxy",
                      after=(paths.HAPROXY_CONFIG,),
                      label=f"haproxy on :{inv.ha.port} over every API server (reloaded when its config changed)")
    return install, haproxy, keepalived


def _images(inv, facts):
    c, images = inv.cluster, kubeadm.images(inv)
    listed = "ctr -n k8s.io images ls -q | sort"
    have = " && ".join(f"echo \"$have\" | grep -qxF {q(i)}" for i in images)
    pull = (f"kubeadm config images pull --kubernetes-version {q(f'v{c.kubernetes_version}')} "
            f"--image-repository {q(c.image_repository)} --cri-socket {CRI_SOCKET}")
    script = (f"before=$({listed}) && {pull} && after=$({listed}) && "
              f"{{ [ \"$before\" != \"$after\" ] || exit {UNCHANGED_EXIT}; }}")
    step = Command("pull images", script, guard=f"have=$({listed}) && {have}", timeout=1800,
                   label=f"{pull} (when an image is missing)")
    held = facts and set(images) <= facts.images
    return unless(step, held and f"all {len(images)} images present")


def _addon_images(inv, facts):
    """The add-ons' images pulled ahead, as kubeadm's are: through the CRI (crictl), so containerd's hosts.toml
    mirrors serve them exactly as they serve the kubelet's own pulls later."""
    refs = addons.node_images(inv)
    if not refs:
        return ()
    listed = "ctr -n k8s.io images ls -q"
    have = " && ".join(f"echo \"$have\" | grep -qxF {q(i)}" for i in refs)
    script = (f"have=$({listed}) && pulled= && for i in {' '.join(q(i) for i in refs)}; do "
              f"echo \"$have\" | grep -qxF \"$i\" || {{ crictl pull \"$i\" && pulled=1; }} || exit 1; done; "
              f"[ -n \"$pulled\" ] || exit {UNCHANGED_EXIT}")
    step = Command("pull add-on images", script, guard=f"have=$({listed}) && {have}", timeout=1800,
                   label=f"crictl pull of each add-on image the node lacks: {', '.join(refs)}")
    held = facts and set(refs) <= facts.images
    return (unless(step, held and f"all {len(refs)} add-on images present"),)
