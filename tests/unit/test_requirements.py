"""The requirements table: every row has its probe fact, a failing preflight case and, where the runtime phase makes
it so, that step; and a kubelet that runs with swap keeps it."""

import pytest

from kubefab import facts, plan
from kubefab.components import requirements, templates
from kubefab.components.requirements import REQUIREMENTS
from kubefab.plan import render, runtime
from kubefab.preflight import checks
from kubefab.preflight.checks import ERROR, FIX, OK, WARNING
from test_preflight import CASES, READY, edit, findings, identity, inventories, load  # noqa: F401 (a fixture)

PROBED = {"command": facts.COMMANDS, "module": facts.MODULES, "sysctl": facts.SYSCTLS}


def failing(row):
    """The preflight cases in which `row`'s check fails."""
    return [c for c in CASES if c.check == row.check and c.status in (ERROR, WARNING, FIX)]


@pytest.fixture(scope="module")
def bundles(inventories):
    """The bundle of each inventory a case in which the runtime phase fixes a requirement names."""
    names = {c.inventory for r in REQUIREMENTS if r.step for c in failing(r) if c.status == FIX}
    return {name: plan.prepare(inventories[name]) for name in names}


@pytest.mark.parametrize("row", REQUIREMENTS, ids=lambda r: r.check)
def test_the_probe_reports_what_each_requirement_reads(row):
    for key in row.reads:
        family, _, name = key.partition(".")
        assert key in facts.SINGLE + facts.REPEATED
        if family in PROBED:
            assert name in PROBED[family] and f"\n{key}=" in READY
    if row.kind == requirements.FILE:
        assert row.subject in facts.KUBE_FILES


@pytest.mark.parametrize("row", REQUIREMENTS, ids=lambda r: r.check)
def test_each_requirement_is_a_preflight_check_with_a_failing_case(row):
    check = next(c for c in checks.CHECKS if c.name == row.check)
    assert (check.severity, check.roles, check.node_fails, check.kubeadm) == (row.severity, row.roles,
                                                                              row.node_fails, row.kubeadm)
    assert failing(row), f"tests/unit/test_preflight.py has no case in which {row.check} fails"
    if row.step:
        assert [c for c in failing(row) if c.status == FIX], f"no case in which the runtime phase fixes {row.check}"


@pytest.mark.parametrize("row", [r for r in REQUIREMENTS if r.step], ids=lambda r: r.check)
def test_the_runtime_step_of_a_requirement_runs_where_its_check_fails(inventories, bundles, row):
    for case in (c for c in failing(row) if c.status == FIX):
        inv = inventories[case.inventory]
        host = next(h for h in inv.hosts if h.name == case.host)
        gathered = facts.parse(host.name, edit(READY, {**identity(host.name), **case.edits}))
        steps = {s.name: s for s in runtime.steps(inv, host, bundles[case.inventory], gathered)}
        assert row.step in steps and not steps[row.step].done, case
        assert row.fix in findings(inv, {host.name: case.edits})[(host.name, row.check)].fix


@pytest.mark.parametrize("row", [r for r in REQUIREMENTS if r.kind in (requirements.SYSCTL, requirements.MODULE)],
                         ids=lambda r: r.check)
def test_the_files_that_persist_a_requirement_set_it(row):
    texts = [templates.load(s.template) for s in render.FILES if s.path in row.persist]
    assert len(texts) == len(row.persist)
    lines = {line.strip() for text in texts for line in text.splitlines() if not line.startswith("#")}
    if row.kind == requirements.SYSCTL:
        assert f"{row.subject} = 1" in lines
    else:
        assert lines - {""} == set(requirements.MODULES)


def test_a_kubelet_with_failswapon_false_keeps_swap_on(inventories):
    inv = inventories["swap allowed"]
    assert requirements.swap_allowed(inv) and not requirements.swap_allowed(inventories["default"])
    offline = plan.build(inv, plan.prepare(inv))
    runtime_steps = {s.name for pp in offline.phases if pp.phase.name == "runtime" for b in pp.batches for hs in b
                     for s in hs.steps}
    assert requirements.SWAP_OFF not in runtime_steps and {"kernel modules", "sysctls"} <= runtime_steps
    swap = {"swap": ["/swapfile 2097148"], "fstab.swap": ["/swapfile"]}
    for prepared in (True, False):
        got = findings(inv, {"w-1": swap}, prepared=prepared)[("w-1", "Swap")]
        assert got.status == WARNING and got.fix.startswith("none needed"), got   # kubeadm's Swap check only warns
    assert findings(inv, {"w-1": {"fstab.swap": ["/swapfile"]}})[("w-1", "Swap")].status == OK


@pytest.mark.parametrize("config", ['{ failSwapOn = false, memorySwap = { swapBehavior = "UnlimitedSwap" } }',
                                    "{ failSwapOn = true }"])
def test_a_kubelet_that_refuses_swap_gets_it_turned_off(tmp_path, config):
    inv = load(tmp_path, "", f"[cluster.kubelet]\nconfig = {config}\n")
    assert not requirements.swap_allowed(inv)
    assert requirements.SWAP_OFF in requirements.fixing(inv)
    got = findings(inv, {"w-1": {"swap": ["/swapfile 2097148"]}})[("w-1", "Swap")]
    assert got.status == FIX and "turns swap off" in got.fix


def test_limitedswap_is_a_swap_behaviour_the_kubelet_runs_with(tmp_path):
    inv = load(tmp_path, "", '[cluster.kubelet]\nconfig = { failSwapOn = false, memorySwap = { swapBehavior = '
                             '"LimitedSwap" } }\n')
    assert requirements.swap_allowed(inv) and requirements.SWAP_OFF not in requirements.fixing(inv)
