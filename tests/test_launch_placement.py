"""Node placement of workers: whole nodes for large workers, shared nodes for small ones."""

from harness.launch.topology import Placement, Role, Topology, Worker, pack_nodes, place_workers


def test_place_large_then_small_workers():
    prefill = Worker(Role.prefill, 0, gpus=8)
    small_a = Worker(Role.decode, 0, gpus=2)
    small_b = Worker(Role.decode, 1, gpus=2)
    large = Worker(Role.decode, 2, gpus=16)

    placements = place_workers([prefill, small_a, small_b, large], gpus_per_node=8)

    # Largest first: 16 GPUs take nodes 0-1, 8 take node 2, the two 2-GPU workers share
    # node 3 at positions 0-1 and 2-3. Results keep the workers' order.
    assert placements == (
        Placement(prefill, (2,), first_gpu=0, gpus_per_node=8),
        Placement(small_a, (3,), first_gpu=0, gpus_per_node=2),
        Placement(small_b, (3,), first_gpu=2, gpus_per_node=2),
        Placement(large, (0, 1), first_gpu=0, gpus_per_node=8),
    )


def test_small_worker_opens_node_when_full():
    workers = [Worker(Role.aggregated, index, gpus=3) for index in range(3)]

    placements = place_workers(workers, gpus_per_node=8)

    # 3 + 3 fit on node 0 (6 of 8 GPUs); the third needs 3 more and opens node 1.
    assert [(placement.nodes, placement.first_gpu) for placement in placements] == [((0,), 0), ((0,), 3), ((1,), 0)]


def test_topology_gpus_on_busiest_node():
    topology = Topology(workers=(Worker(Role.aggregated, 0, 2), Worker(Role.aggregated, 1, 4)), gpus_per_node=8)

    # Both share node 0: 4 + 2 = 6 GPUs there.
    assert topology.num_nodes == 1
    assert topology.max_gpus_on_a_node == 6


def test_pack_nodes_counts_placement():
    # 4+4 share one 8-GPU node, 2+2+2 share a second, 16 takes two whole nodes.
    assert pack_nodes([4, 4, 2, 2, 2, 16], gpus_per_node=8) == 4
    assert pack_nodes([], gpus_per_node=8) == 0
