"""A real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster): a head with no CPU for
work, and worker nodes with one CPU each, so shards land on the workers and a killed node's shard
has somewhere to go. Failure detection is tuned down from Ray's 30 s to about 2 s."""

from __future__ import annotations

import pytest

NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}


@pytest.fixture(scope="module")
def ray_cluster():
    pytest.importorskip("ray", reason="the site tests need Ray: pip install -e '.[site]'")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "object_store_memory": 80 * 2**20,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4,
                           "health_check_initial_delay_ms": 0}})
    workers = [cluster.add_node(**NODE) for _ in range(3)]
    cluster.wait_for_nodes()
    # this process watches (and kills nodes) without being a Ray driver itself, so that no node
    # removal can break it; `facestream site ...` runs are the drivers
    yield cluster, workers
    cluster.shutdown()
