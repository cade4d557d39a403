"""Node names and addresses of an allocation, from scontrol output."""

import pytest

from harness.errors import LaunchError
from harness.launch.nodes import allocation_nodes, parse_node_addresses, placeholder_nodes, resolve_address

# Two lines of `scontrol show node --oneliner node1,node2` on the local test cluster (shortened).
SCONTROL_NODES = (
    "NodeName=node1 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 NodeAddr=vm NodeHostName=vm Port=24102 Gres=gpu:8\n"
    "NodeName=node2 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 NodeAddr=10.0.0.12 NodeHostName=gpu2 Port=24103\n"
)


def test_parse_node_addresses():
    assert parse_node_addresses(SCONTROL_NODES) == {"node1": "vm", "node2": "10.0.0.12"}


def test_resolve_address_keeps_ip():
    assert resolve_address("127.0.0.1") == "127.0.0.1"


def test_resolve_unknown_host_fails():
    with pytest.raises(LaunchError, match="cannot resolve node address 'no-such-node.invalid'"):
        resolve_address("no-such-node.invalid")


def test_placeholder_nodes_count_from_zero():
    nodes = placeholder_nodes(2)

    assert nodes.names == ("node0", "node1")
    assert nodes.head_address == "node0"


def test_allocation_needs_slurm_job(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_NODELIST", raising=False)

    with pytest.raises(LaunchError, match="SLURM_JOB_NODELIST is not set"):
        allocation_nodes(1)
