"""The nodes a point runs on: names and addresses inside a SLURM allocation, or this machine.

Inside an allocation, `scontrol show hostnames $SLURM_JOB_NODELIST` expands the node list
and `scontrol show node` gives each node's NodeAddr, the address that slurmctld itself
uses to reach it. A node name need not resolve (the local test cluster's node1 and
node2 both live on one host), so the address is resolved from NodeAddr. Only stdout of
scontrol is parsed: SLURM tools print notices on stderr.
"""

import logging
import os
import re
import socket
import subprocess
from dataclasses import dataclass

from harness.errors import LaunchError

logger = logging.getLogger(__name__)

LOCAL_ADDRESS = "127.0.0.1"
SCONTROL_TIMEOUT_S = 60


@dataclass(frozen=True)
class NodeSet:
    """Node names and the address of each, in allocation order; node 0 runs the job."""

    names: tuple[str, ...]
    addresses: tuple[str, ...]
    # False when every command runs on this machine as a plain subprocess (cluster=local).
    slurm: bool

    @property
    def head_address(self) -> str:
        return self.addresses[0]

    def name(self, index: int) -> str:
        return self.names[index % len(self.names)]

    def address(self, index: int) -> str:
        """Return the address of node `index`; locally every index is this machine."""
        return self.addresses[index % len(self.addresses)]


def local_nodes() -> NodeSet:
    return NodeSet(names=("localhost",), addresses=(LOCAL_ADDRESS,), slurm=False)


def placeholder_nodes(count: int) -> NodeSet:
    """Return node0 .. node{count-1}, each its own address, for a dry run outside an allocation."""
    names = tuple(f"node{index}" for index in range(count))
    return NodeSet(names=names, addresses=names, slurm=True)


def allocation_nodes(required: int) -> NodeSet:
    """Return the nodes of the SLURM job this process runs in, with their addresses.

    Raises LaunchError outside an allocation or when it has fewer than `required` nodes.
    """
    nodelist = os.environ.get("SLURM_JOB_NODELIST")
    if not nodelist:
        raise LaunchError(
            "SLURM_JOB_NODELIST is not set: a cluster=slurm point must run inside its SLURM "
            "job; submit it with `harness sweep cluster=slurm ...`"
        )
    names = tuple(_scontrol(["show", "hostnames", nodelist]).split())
    if len(names) < required:
        raise LaunchError(
            f"the allocation {nodelist} has {len(names)} nodes but the point's workers need "
            f"{required}; check cluster.gpus_per_node against the nodes of the partition"
        )
    node_addresses = parse_node_addresses(_scontrol(["show", "node", "--oneliner", ",".join(names)]))
    addresses = tuple(resolve_address(node_addresses.get(name, name)) for name in names)
    logger.info("allocation nodes: %s", ", ".join(f"{name} ({address})" for name, address in zip(names, addresses)))
    return NodeSet(names=names, addresses=addresses, slurm=True)


def allocation_node_names() -> tuple[str, ...] | None:
    """Return the node names of the allocation this process runs in, or None outside one."""
    nodelist = os.environ.get("SLURM_JOB_NODELIST")
    if not nodelist:
        return None
    try:
        return tuple(_scontrol(["show", "hostnames", nodelist]).split())
    except LaunchError as error:
        logger.warning("cannot expand SLURM_JOB_NODELIST=%s: %s", nodelist, error)
        return None


def parse_node_addresses(text: str) -> dict[str, str]:
    """Map NodeName to NodeAddr in `scontrol show node --oneliner` output (one node a line)."""
    addresses = {}
    for line in text.splitlines():
        name = re.search(r"(?:^|\s)NodeName=(\S+)", line)
        address = re.search(r"(?:^|\s)NodeAddr=(\S+)", line)
        if name and address:
            addresses[name.group(1)] = address.group(1)
    return addresses


def resolve_address(host: str) -> str:
    """Return the IPv4 address of host, which may already be an address."""
    try:
        infos = socket.getaddrinfo(host, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise LaunchError(
            f"cannot resolve node address {host!r}: {error}; check the node's NodeAddr in "
            "`scontrol show node` and the name service of the compute nodes"
        ) from None
    return infos[0][4][0]


def _scontrol(args: list[str]) -> str:
    command = ["scontrol", *args]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=SCONTROL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LaunchError(f"{' '.join(command)} failed: {error}") from None
    if result.returncode != 0:
        raise LaunchError(
            f"{' '.join(command)} failed with exit code {result.returncode}: {result.stderr.strip()}"
        )
    return result.stdout
