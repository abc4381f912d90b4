"""kubefab's modules import one another one way: no cycle, not even through an import inside a function."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import kubefab

PACKAGE = Path(kubefab.__file__).resolve().parent


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name, path, known):
    """The kubefab modules `name` imports anywhere in its source (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            names = {f"{base}.{alias.name}" for alias in node.names}
            found |= names if names <= set(known) else names | {base}   # `from pkg import submodule` skips pkg
    return {m for m in found if m in known and m != name}


def graph():
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def cycle(edges):
    """One import cycle as a list of modules (first repeated at the end), or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_the_graph_sees_imports_inside_functions():
    edges = {"kubefab.pki": {"kubefab.pki.x509"}, "kubefab.pki.x509": set(), "kubefab.pki.kubeconfig": {"kubefab.pki"}}
    assert cycle(edges) is None
    edges["kubefab.pki"].add("kubefab.pki.kubeconfig")        # what pki.host_files once did inside the function
    assert cycle(edges) == ["kubefab.pki", "kubefab.pki.kubeconfig", "kubefab.pki"]
    assert "kubefab.pki.kubeconfig" in graph()["kubefab.state.bundle"]


def test_no_import_cycle_in_kubefab():
    assert cycle(graph()) is None


# The architecture, lowest layer first: a module imports from its own layer or lower ones, never from a higher one.
# Up to preflight the layers are pure (files, values, the local state dir); SSH, the API and the run come after.
LAYERS = (
    {"kubefab", "errors", "digits", "secret", "fsutil", "net", "versions", "paths", "steps"},  # shared values, rules
    {"pki"}, {"components"}, {"inventory"}, {"facts"}, {"state"}, {"plan"}, {"preflight"},        # pure
    {"remote"}, {"api"}, {"run"}, {"tasks"}, {"main"},
)
PURE = set().union(*LAYERS[:LAYERS.index({"preflight"}) + 1])


def layer(module):
    """The index in LAYERS of `module` (kubefab.plan.render -> the layer of plan)."""
    top = module.split(".")[1] if "." in module else module
    return next(i for i, names in enumerate(LAYERS) if top in names)


def test_every_module_has_a_layer():
    assert {n.split(".")[1] for n in modules() if "." in n} <= set().union(*LAYERS)


def test_no_module_imports_from_a_higher_layer():
    upward = sorted(f"{name} imports {dep}" for name, deps in graph().items() for dep in deps
                    if layer(dep) > layer(name))
    assert upward == []


def test_the_layer_check_sees_an_upward_import():
    assert layer("kubefab.remote.ssh") > layer("kubefab.plan.render") > layer("kubefab.pki.x509")


def test_the_pure_layers_import_no_ssh_and_no_api_client():
    for name, path in modules().items():
        if name.split(".")[1 if "." in name else 0] in PURE:
            tree = ast.parse(path.read_text())
            tops = {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            tops |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            assert not tops & {"fabric", "paramiko", "invoke", "kubernetes"}, name


def test_kubefab_imports_neither_the_lab_nor_the_tests_and_one_module_each_imports_cryptography_and_kubernetes():
    for name, path in modules().items():
        tops = {(n.module or "").split(".")[0] for n in ast.walk(ast.parse(path.read_text()))
                if isinstance(n, ast.ImportFrom) and not n.level}
        tops |= {a.name.split(".")[0] for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Import)
                 for a in n.names}
        assert not tops & {"lab", "tests", "conftest"}, name
        assert ("cryptography" in tops) == (name == "kubefab.pki.x509"), name
        assert ("kubernetes" in tops) == (name == "kubefab.api.kube"), name


def test_listing_the_tasks_and_planning_offline_never_load_the_kubernetes_client(tmp_path):
    code = ("import sys; from kubefab.main import program\n"
            "for argv in (['--list'], ['cluster.plan', '-i', sys.argv[1], '--state-dir', sys.argv[2]]):\n"
            "    program.run(['kubefab', *argv], exit=False)\n"
            "print('kubernetes client loaded:', 'kubernetes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, PACKAGE.parent / "inventory.toml", tmp_path / "state"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.stdout.endswith("kubernetes client loaded: False\n"), out.stdout[-500:] + out.stderr
