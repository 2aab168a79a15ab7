"""Combining the INFO of several cluster masters into one server's worth of figures."""

from __future__ import annotations

from cacheservice.store.server_info import combine, memory_limit

MIB = 1024 * 1024


def test_limits_are_per_node_and_the_fullest_node_decides() -> None:
    nodes = [
        # No maxmemory: the node may use its machine's memory.
        {"used_memory": 100 * MIB, "maxmemory": 0, "total_system_memory": 1000 * MIB,
         "connected_clients": 4, "maxclients": 100, "maxmemory_policy": "noeviction"},
        {"used_memory": 90 * MIB, "maxmemory": 100 * MIB, "total_system_memory": 1000 * MIB,
         "connected_clients": 6, "maxclients": 100, "maxmemory_policy": "volatile-lru"},
    ]  # fmt: skip

    combined = combine(nodes)

    assert [memory_limit(node) for node in nodes] == [1000 * MIB, 100 * MIB]
    assert combined["used_memory"] == 190 * MIB
    assert combined["maxmemory"] == 1100 * MIB
    assert combined["fullest_node_share"] == 0.9
    assert combined["connected_clients"] == 10
    assert combined["maxclients"] == 200
    # A node that may evict differently is not hidden behind the first node's policy.
    assert combined["maxmemory_policy"] == "noeviction,volatile-lru"
