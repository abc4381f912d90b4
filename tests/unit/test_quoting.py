"""Quoting at the boundary: no value of an inventory ever runs as a command in a host script.

Every string an inventory holds (each str field of its dataclasses, each list item, each table key and value,
a host's name, a registry's name, the offline directory and the names of its files) is filled in turn with
shell payloads whose marker word would run if it stood outside quotes. Each inventory is either refused (at
load, with the line; or by the plan, without a traceback) or planned offline, and then every script a host
would get is scanned: cluster.up's phases, the fact probe, node.join's fresh join and cluster.reset, each
script as kubefab.remote.script sends it, with each step's `sh -c` body scanned in turn. The marker must stand
inside single quotes everywhere, and every script must parse (`sh -n`).
"""

import json
import os
import re
import subprocess
import time
import typing
from dataclasses import fields, is_dataclass

import pytest

from kubefab import inventory, plan
from kubefab.errors import InventoryError, KubefabError
from kubefab.plan import offline, phases, render, reset, snapshots, workflows
from kubefab.plan import upgrade as upgrading
from kubefab.remote import script
from kubefab.secret import Secret
from kubefab.steps import Api, Command, Push, q
from shell_scan import exposures

MARK = "kfpwned"
PAYLOADS = ("$(kfpwned)", "`kfpwned`", "a;kfpwned", "a|kfpwned&", "a'; kfpwned; '", 'a"; kfpwned; "',
            "a\nkfpwned\n", "a\\'; kfpwned #\\", 'a\\"; kfpwned #', "a&&kfpwned||")
# a valid start for the fields that must look like something, so that more payloads get past validation
PREFIXES = {"package_repository": "https://m.example/", "registries": "https://m.example/",
            "image_repository": "registry.example/", "control_plane_endpoint": "api.example:6443/",
            "identity_file": "/tmp/", "known_hosts_file": "/tmp/", "cni_manifest": "/tmp/", "directory": "off/"}
NONCE = "0123456789abcdef"
TOKEN = Secret("abcdef.0123456789abcdef")
TABLES = (("cluster", inventory.Cluster), ("cluster.apiserver", inventory.ApiServer),
          ("cluster.controller_manager", inventory.Component), ("cluster.scheduler", inventory.Component),
          ("cluster.kubelet", inventory.Kubelet), ("cluster.kube_proxy", inventory.KubeProxy),
          ("ssh", inventory.SSH), ("hosts.w-1", inventory.Host), ("hosts.w-1.ssh", inventory.SSH),
          ("mirrors", inventory.Mirrors), ("install", inventory.Install), ("addons", inventory.Addons),
          ("addons.tls", inventory.AddonsTls), ("cluster.ha", inventory.HA))
# for a table of strings: a key the component knows, so that only the payload may be what is wrong
KEYS = {("cluster.apiserver", "extra_args"): "audit-log-path",
        ("cluster.controller_manager", "extra_args"): "cluster-name",
        ("cluster.scheduler", "extra_args"): "authentication-kubeconfig", ("cluster.kubelet", "extra_args"): "root-dir",
        ("cluster.kubelet", "config"): "staticPodPath", ("cluster.kube_proxy", "config"): "hostnameOverride",
        ("hosts.w-1", "labels"): "zone", ("mirrors", "registries"): "docker.io"}


def _toml(value):
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def placements():
    """(field, table, {key: value with PAYLOAD in it}) for every string an inventory table holds."""
    for table, spec in TABLES:
        for f in fields(spec):
            if is_dataclass(f.type) or (spec is inventory.Host and f.name in ("name", "ssh")):
                continue
            yield from _shapes(f.name, table, f.type)
    yield "hosts", None, "host name"
    yield "install", None, "offline file name"


def _shapes(name, table, annotation):
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is str:
        yield name, table, {name: "PAYLOAD"}
    elif origin is tuple and args[0] is str:
        yield name, table, {name: ["PAYLOAD"]}
    elif origin is dict:
        listed = typing.get_origin(args[1]) is tuple
        yield name, table, {name: {KEYS[table, name]: ["PAYLOAD"] if listed else "PAYLOAD"}}
        yield name, table, {name: {"PAYLOAD": ["https://m.example"] if listed else "v"}}


def _fill(value, payload):
    if isinstance(value, dict):
        return {_fill(k, payload): _fill(v, payload) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, payload) for v in value]
    return payload if value == "PAYLOAD" else value


def _offline_dir(root, extra=()):
    root.mkdir(parents=True, exist_ok=True)
    for name in ("kubeadm", "kubelet", "kubelet.service", "10-kubeadm.conf", *extra):
        (root / name).write_text(f"{name}\n")
        os.chmod(root / name, 0o755 if "." not in name else 0o644)
    return root


def inventory_text(tmp, places):
    """The inventory with each of `places` ((table, shape, payload)) filled; a tmp offline directory when one of
    them is the offline directory or a file in it."""
    tables = {("cluster",): {"name": "q", "kubernetes_version": "1.34.2", "encryption_algorithm": "ECDSA-P256"},
              ("hosts", "cp-1"): {"address": "10.0.0.11", "roles": ["control-plane"]},
              ("hosts", "w-1"): {"address": "10.0.0.21", "roles": ["worker"], "labels": {"zone": "a"},
                                 "taints": ["d=x:NoSchedule"]},
              ("mirrors",): {"registries": {"docker.io": ["https://m.example"]}}}
    for table, shape, payload in places:
        if shape == "host name":
            tables["hosts", payload] = {"address": "10.0.0.22", "roles": ["worker"]}
        elif shape == "offline file name":
            _offline_dir(tmp / "off", extra=(payload,))
            tables["install",] = {"source": "offline", "directory": "off"}
        else:
            if "directory" in shape:
                _offline_dir(tmp / payload)
                tables["install",] = {"source": "offline"}
            _merge(tables.setdefault(tuple(table.split(".")), {}), _fill(shape, payload))
    return "".join(f"[{'.'.join(_key(p) for p in name)}]\n" +
                   "".join(f"{_key(k)} = {_toml(v)}\n" for k, v in values.items()) + "\n"
                   for name, values in sorted(tables.items()))


def _merge(into, values):
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _touches(table, shape, payload):
    """The places a shape sets ((table, key) or (table, key, key inside)): shapes sharing one cannot go together."""
    if shape == "host name":
        return {("hosts", payload)}
    if shape == "offline file name" or "directory" in shape:
        return {("install", "source"), ("install", "directory")}
    return {(table, key, *((inner,) if isinstance(value, dict) else ()))
            for key, value in _fill(shape, payload).items() for inner in (value if isinstance(value, dict) else (0,))}


def _key(name):
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def host_scripts(inv, bundle):
    """(what, its steps, script text) of every script a host gets: cluster.up's phases, etcd.restore's,
    cluster.upgrade's (from a cluster one minor older), node.remove's of each host, the fact probe (no steps),
    node.join's fresh join, cluster.reset."""
    for pp in plan.build(inv, bundle).phases:
        for hs in (hs for batch in pp.batches for hs in batch):
            steps = [s for s in hs.steps if isinstance(s, (Command, Push))]
            if steps:
                yield f"{pp.phase.name} on {hs.host.name}", steps, script.build(steps, NONCE).text.decode()
    snapshot = inv.state_dir / "pki" / "ca.crt"     # any local file: the restore's push only lists it here
    data = snapshots.Metadata(inv.cluster.name, "0" * 64, snapshot.stat().st_size, 1, 1, inv.first_control_plane.name,
                              (), "", "", "v1.33.5", "2026-12-05T23:00:00+00:00")
    older = upgrading.Survey("1.33.5", {h.name: "1.33.5" for h in inv.hosts},
                             {h.name: {c: f"registry.k8s.io/{c}:v1.33.5" for c in upgrading.UPGRADED}
                              for h in inv.control_planes})
    day2 = [(workflows.restore(data, snapshot, "kubefab-restore-0"), bundle, ()),
            (workflows.upgrade(older, 1), bundle, ()),
            *((workflows.remove(h.name), None, (h.name,)) for h in inv.hosts)]
    for workflow, given, hosts in day2:
        for pp in plan.build(inv, given, None, (), (), hosts, 0, workflow).phases:
            for hs in (hs for batch in pp.batches for hs in batch):
                steps = [s for s in hs.steps if isinstance(s, (Command, Push))]
                if steps:
                    text = script.build(steps, NONCE).text.decode()
                    yield f"{workflow.name} {pp.phase.name} on {hs.host.name}", steps, text
    for h in inv.hosts:
        yield f"facts on {h.name}", [], plan.probe(inv, bundle, h)
        leaving = [s for s in reset.host_steps(inv, h) if isinstance(s, (Command, Push))]
        yield f"reset on {h.name}", leaving, script.build(leaving, NONCE).text.decode()
        if h != inv.first_control_plane:
            steps = [s for s in phases.fresh_join(inv, h, None, TOKEN) if not isinstance(s, Api)]
            yield f"node.join on {h.name}", steps, script.build(steps, NONCE).text.decode()


def cases():
    """(field, table, shape, payload) of every payload in every place, bare and after a valid start."""
    for field, table, shape in placements():
        for payload in PAYLOADS:
            yield field, table, shape, payload
            if field in PREFIXES:
                yield field, table, shape, PREFIXES[field] + payload


def _refused_well(e, field):
    """'' when inventory error `e` names the line and the field, else what it lacks."""
    lined = [p for p in e.problems if p.startswith("line ") and field in p]
    return "" if lined else f"refused, but no problem names a line and {field!r}: {e.problems}"


def groups(accepted):
    """The accepted cases as few inventories as can hold them: one payload each (bare or after its field's
    start), no place set twice, and no case that changes which steps the others reach."""
    found = []
    for case in accepted:
        field, table, shape, payload = case
        # the offline install source drops the package steps: those cases go together, apart from the others
        kind = (payload.removeprefix(PREFIXES.get(field, "")), ("install", "source") in _touches(table, shape, payload))
        touches = _touches(table, shape, payload)
        group = next((g for g in found if g[0] == kind and not g[1] & touches), None)
        if group is None:
            group = (kind, set(), [])
            found.append(group)
        group[1].update(touches)
        group[2].append(case)
    return [cases for _, _, cases in found]


def _where(cases):
    return ", ".join(f"{c[1] or c[0]} {c[2]} = {c[3]!r}" for c in cases)


class Scan:
    """Plans inventories offline and scans every host script once; what it found, and counts for the report."""

    def __init__(self, root):
        self.root, self.inventories, self.planned, self.render_refused = root, 0, 0, []
        self.scanned, self.problems, self.texts, self.written = {}, [], root / "scripts", 0
        self.texts.mkdir()
        self.run([])                # the state dir's PKI and kubeconfigs, which every later inventory keeps

    def run(self, cases):
        """Plan `cases` in one inventory and scan its host scripts; one the plan refuses, or whose scripts cannot
        be built, is split until each case stands alone: a case refused on its own counts as refused."""
        self.inventories += 1
        case = self.root / f"inventory{self.inventories}"
        case.mkdir()
        path = case / "inventory.toml"
        path.write_text(inventory_text(case, [c[1:] for c in cases]))
        try:
            inv = inventory.load(path, state_dir=self.root / "state")
            if cases:   # what the plan may refuse, first: prepare checks it too, after its costly kubeconfig checks
                render.render(inv)
                offline.files(inv)
            scripts = list(host_scripts(inv, plan.prepare(inv)))
        except (KubefabError, ValueError) as e:    # a ValueError: a script that cannot be built, a traceback
            assert cases, f"the plan refuses the inventory without payloads: {e}"
            if len(cases) > 1:
                self.run(cases[:len(cases) // 2])
                self.run(cases[len(cases) // 2:])
            elif isinstance(e, KubefabError):
                self.render_refused.append((cases[0], str(e)))
            else:
                self.problems.append(f"{_where(cases)}: planned, but its host scripts cannot be built: {e}")
            return
        for what, steps, text in scripts:
            if text not in self.scanned:
                self.scanned[text] = exposures(text, MARK)
                self._syntax(text, *(t for s in steps if isinstance(s, Command) for t in (s.script, s.guard) if t))
        found = [f"{_where(cases)}: {what}: {e}" for what, _, text in scripts for e in self.scanned[text]]
        if found and len(cases) > 1:     # which case it is: each alone
            for one in cases:
                self.run([one])
            return
        self.planned += len(cases)
        self.problems += found

    def _syntax(self, *texts):
        for text in texts:
            self.written += 1
            (self.texts / f"{self.written}.sh").write_text(text)

    def unparsed(self):
        """The scripts `sh -n` refuses, with its complaint."""
        files = sorted(map(str, self.texts.iterdir()))
        return subprocess.run(["sh", "-c", 'for f in "$@"; do sh -n "$f" 2>&1 || echo "$f"; done', "sh", *files],
                              capture_output=True, text=True).stdout


def test_no_inventory_value_runs_in_any_host_script(tmp_path):
    started, accepted, refused, problems = time.monotonic(), [], 0, []
    for n, (field, table, shape, payload) in enumerate(cases()):
        path = tmp_path / f"case{n}.toml"
        path.write_text(inventory_text(tmp_path / f"case{n}", [(table, shape, payload)]))
        try:
            inventory.load(path, state_dir=tmp_path / "state")
            accepted.append((field, table, shape, payload))
        except InventoryError as e:
            refused += 1
            why = _refused_well(e, field)
            problems += [f"{table or field} {shape} = {payload!r}: {why}"] if why else []
    scan = Scan(tmp_path)
    for group in groups(accepted):
        scan.run(group)
    problems += scan.problems
    unparsed = scan.unparsed()
    seconds = time.monotonic() - started
    assert not problems, (f"{len(problems)} payloads stand outside quotes, or were refused without their line:\n"
                          + "\n".join(problems[:30]))
    assert not unparsed, f"scripts that do not parse: {unparsed[:2000]}"
    carrying = sum(MARK in text for text in scan.scanned)
    assert carrying, "no payload reached a host script: the test proves nothing"
    print(f"\n{refused + len(accepted)} cases ({len(PAYLOADS)} payloads, {len(list(placements()))} places): "
          f"{refused} refused at load with their line, {len(scan.render_refused)} refused by the plan, "
          f"{scan.planned} planned in {scan.inventories} inventories; {len(scan.scanned)} distinct host scripts "
          f"scanned, {carrying} of them carrying a payload; {scan.written} scripts and step bodies parsed by sh -n; "
          f"{seconds:.1f} s")


def _reachable(spec):
    """The dataclasses an inventory is made of, from `spec` down."""
    nested = [f.type for f in fields(spec) if is_dataclass(f.type)]
    return {spec, *(d for n in nested for d in _reachable(n))}


def test_every_table_of_the_inventory_is_filled_with_payloads():
    filled = {spec for _, spec in TABLES}
    tables = _reachable(inventory.Cluster) | _reachable(inventory.Addons) | {inventory.SSH, inventory.Host,
                                                                              inventory.Mirrors, inventory.Install}
    assert tables <= filled
    assert {f.name for f in fields(inventory.Inventory) if is_dataclass(f.type)} <= {"cluster", "ssh", "mirrors",
                                                                                      "install", "addons"}


BAD_SNIPPETS = ("echo $(kfpwned)", 'echo "x$(kfpwned)"', "echo `kfpwned`", "echo ${x:-kfpwned}", 'echo "a kfpwned"',
                "echo 'a' kfpwned", "echo \\kfpwned", "a; # c\nkfpwned", "cat <<EOF\n$(kfpwned)\nEOF\n",
                "x=$(case a in b) echo;; esac; kfpwned)", "sh -c 'echo; kfpwned'", "eval 'kfpwned'",
                "sed -e 'kfpwned' f", f"timeout -k 10 3 sh -c {q('echo ' + q('a') + '; kfpwned')} >/dev/null")
GOOD_SNIPPETS = (f"echo {q(p)}" for p in PAYLOADS)


@pytest.mark.parametrize("text", BAD_SNIPPETS)
def test_the_scanner_finds_a_marker_the_shell_would_run(text):
    assert exposures(text, MARK)


@pytest.mark.parametrize("text", [*GOOD_SNIPPETS, "# kfpwned", "cat <<'EOF'\n$(kfpwned)\nEOF\necho ok",
                                  "x=$(case a in b) echo;; esac) 'kfpwned'", "echo $((1 + 2)) ${#x} 2>&1 'kfpwned'",
                                  '[ "${t%"$nl"*}" = x ] || echo \'kfpwned\'', f"sh -c {q('echo ' + q(PAYLOADS[4]))}",
                                  "for p in 1; do case \"$x\" in *\" $p \"*) return 1;; esac; done; echo 'kfpwned'"])
def test_the_scanner_passes_a_marker_in_single_quotes(text):
    assert exposures(text, MARK) == []


def mirrors_inventory(tmp_path, mirrors):
    path = tmp_path / "inventory.toml"
    path.write_text('[cluster]\nname = "m"\n\n[hosts.cp-1]\naddress = "10.0.0.11"\nroles = ["control-plane"]\n\n'
                    f"[mirrors]\n{mirrors}\n")
    return path


@pytest.mark.parametrize("mirrors, message", [
    ('package_repository = "https://example.org/$(touch /tmp/owned)"',
     "line 9: [mirrors] package_repository 'https://example.org/$(touch /tmp/owned)' holds a space (write %20), "
     "which a URL may not — give the base of the package repositories as an http(s):// or file:// URL"),
    ("package_repository = \"https://example.org/k8s'; reboot; '\"", "holds a space (write %20), \"'\" (write %27)"),
    ('package_repository = "https://example.org/k8s\\nreboot"', "holds '\\n' (write %0A)"),
    ('package_repository = "https://example.org/`reboot`"', "holds '`' (write %60)"),
    ('package_repository = "ftp://example.org/k8s"', "is not an http://, https:// or file:// URL"),
    ('package_repository = "https:///k8s"', "names no host"),
    ('package_repository = "https://example.org:port/k8s"', "cannot be read as a URL"),
    ('package_repository = "https://example.org/k8s?x=1"', "has a query or fragment"),
    ('package_repository = "file://repo/k8s"', "must be file:///absolute/path"),
    ('registries = { "docker.io" = ["https://m.example/\\"x"] }',
     "line 9: [mirrors.registries] docker.io mirror 'https://m.example/\"x' holds '\"' (write %22), which a URL may "
     "not — list http(s):// URLs of registry hosts"),
    ('registries = { "docker.io" = ["file:///srv/mirror"] }', "is not an http:// or https:// URL"),
    ('registries = { "docker.io\\n" = ["https://m.example"] }', "must be a registry host"),
])
def test_a_url_is_parsed_at_load_time_with_its_line(tmp_path, mirrors, message):
    with pytest.raises(InventoryError) as e:
        inventory.load(mirrors_inventory(tmp_path, mirrors))
    assert message in str(e.value)


@pytest.mark.parametrize("mirrors", [
    'package_repository = "https://pkgs.k8s.io/core:/stable:"', 'package_repository = "file:///srv/k8s"',
    'package_repository = "http://[2001:db8::1]:8080/k8s/"',
    'registries = { "docker.io" = ["https://registry-1.docker.io", "http://10.0.0.5:5000/v2"] }',
])
def test_a_url_that_can_travel_is_accepted(tmp_path, mirrors):
    inventory.load(mirrors_inventory(tmp_path, mirrors))


def test_a_url_that_passes_is_quoted_in_the_install_script(tmp_path):
    inv = inventory.load(mirrors_inventory(tmp_path, 'package_repository = "https://example.org/$(reboot)"'))
    (install,) = [s for s in plan.build(inv, plan.prepare(inv)).phases[0].batches[0][0].steps
                  if s.name == "install packages"]
    assert "download-file 'https://example.org/$(reboot)/v1.34/deb/Release.key'" in install.script
    assert exposures(install.script.replace("reboot", MARK), MARK) == []
