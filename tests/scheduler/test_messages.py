from __future__ import annotations

from fleetkit.scheduler.framework import fit_error_message
from fleetkit.scheduler.status import Status


def test_reasons_counted_and_sorted_as_strings() -> None:
    statuses = {
        f"gpu-{i}": Status.unresolvable("node(s) had untolerated taint {gpu: present}")
        for i in range(10)
    }
    statuses["s1"] = Status.unschedulable("Insufficient cpu")
    statuses["s2"] = Status.unschedulable("Insufficient cpu", "Insufficient memory")
    msg = fit_error_message(12, statuses, None)
    # "10 ..." sorts before "2 ..." because the strings are compared, not the counts
    assert msg == (
        "0/12 nodes are available: 1 Insufficient memory, 10 node(s) had untolerated taint "
        "{gpu: present}, 2 Insufficient cpu."
    )


def test_absent_nodes_and_postfilter() -> None:
    statuses = {"a": Status.unschedulable("Insufficient cpu")}
    absent = Status.unresolvable("node(s) didn't satisfy plugin(s) [NodeAffinity]")
    msg = fit_error_message(4, statuses, absent, postfilter_msg="preemption: x.")
    assert msg == (
        "0/4 nodes are available: 1 Insufficient cpu, 3 node(s) didn't satisfy plugin(s) "
        "[NodeAffinity]. preemption: x."
    )


def test_prefilter_message_replaces_histogram() -> None:
    msg = fit_error_message(
        3,
        {},
        Status.unresolvable("pod affinity terms conflict"),
        prefilter_msg="pod affinity terms conflict",
    )
    assert msg == "0/3 nodes are available: pod affinity terms conflict."
