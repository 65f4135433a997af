"""Issue 17, item 6: in the local profile as root, a person's server is held to their limits.

The settings (SPORTHUB_USER_MEM_LIMIT / SPORTHUB_USER_CPU_LIMIT) and the groups' properties were
accepted and ignored here: one person could starve everyone. The server joins a cgroup of its own
(sporthub.hub.cgroups), read back here from the kernel for the running server's process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sporthub.hub import cgroups
from tests.hub.test_isolation_local import server_process
from tests.support.fake_backend import KEY, MODEL, FakeBackend
from tests.support.stack import HubClient, create_account, make_stack, set_password, started

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="system users need a hub run as root")


def limits_of(pid: int) -> dict[str, str]:
    """What the kernel holds the process to, from its own cgroups (v1 or v2)."""
    text = Path(f"/proc/{pid}/cgroup").read_text()
    root = cgroups.ROOT
    if cgroups.version() == 2:
        group = root / cgroups.own_path(None, text).lstrip("/")
        return {f: (group / f).read_text().strip() for f in ("memory.max", "cpu.max", "pids.max")}
    found = {}
    for controller, files in (("memory", ["memory.limit_in_bytes"]),
                              ("cpu", ["cpu.cfs_quota_us", "cpu.cfs_period_us"]),
                              ("pids", ["pids.max"])):
        group = root / controller / cgroups.own_path(controller, text).lstrip("/")
        found.update({f: (group / f).read_text().strip() for f in files})
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with FakeBackend() as backend:
        backends = json.dumps([{"name": "fake", "url": backend.url, "api_key": KEY,
                                "models": [MODEL]}])
        stack = make_stack(tmp_path_factory.mktemp("local-limits"), llm_backends=backends,
                           user_mem_limit="600M", user_cpu_limit="1")
        with started(stack):
            yield stack


@pytest.mark.stack
def test_a_persons_server_is_held_to_their_groups_limits(stack):
    admin = HubClient.admin(stack)
    assert admin.api("PUT", "/groups/scientists/properties", json={
        "user_mem_limit": "700M", "user_cpu_limit": 0.5}).status_code == 200
    password = "long-intervals-on-tuesday"
    assert set_password(create_account(admin, "lim", "scientists"), password).status_code == 302
    person = HubClient(stack)
    assert person.login("lim", password).status_code == 302
    person.token_from_session("lim")
    person.start_server("lim")
    try:
        process = server_process("lim")
        held = limits_of(process.pid)
        page = os.sysconf("SC_PAGE_SIZE")
        if cgroups.version() == 2:
            assert held == {"memory.max": str(700 * 2**20 // page * page),
                            "cpu.max": "50000 100000", "pids.max": "1024"}, held
        else:
            assert held == {"memory.limit_in_bytes": str(700 * 2**20 // page * page),
                            "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000",
                            "pids.max": "1024"}, held
        # the person's own user cannot take the server out of its group
        assert process.uids().real == stack.system_user("lim").pw_uid
        assert "sporthub-" in Path(f"/proc/{process.pid}/cgroup").read_text()
    finally:
        admin.api("DELETE", "/users/lim/server")


def test_on_cgroup_v2_the_same_limits_are_written_to_the_unified_tree(tmp_path):
    """These machines run cgroup v1; v2 is checked on a folder laid out as its tree (files
    only: what a kernel would refuse cannot be seen here)."""
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    hub = tmp_path / "hub.scope"
    hub.mkdir()
    procs = cgroups.prepare("jupyter-ann", 2 * 2**30, 1.5, root=tmp_path,
                            proc_self="0::/hub.scope\n")
    group = hub / "sporthub-jupyter-ann"
    assert procs == [group / "cgroup.procs"]
    assert (hub / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert {f: (group / f).read_text() for f in ("memory.max", "cpu.max", "pids.max")} == \
        {"memory.max": str(2 * 2**30), "cpu.max": "150000 100000", "pids.max": "1024"}
    cgroups.prepare("jupyter-ann", None, None, root=tmp_path, proc_self="0::/hub.scope\n")
    assert (group / "memory.max").read_text() == "max" and \
        (group / "cpu.max").read_text() == "max 100000"


def test_limits_that_cannot_be_set_stop_the_start_with_the_reason(tmp_path):
    with pytest.raises(cgroups.CgroupError, match="cannot set jupyter-ann's limits"):
        cgroups.prepare("jupyter-ann", 2**30, 1.0, root=tmp_path / "missing",
                        proc_self="4:memory:/\n1:cpu:/\n8:pids:/\n")
