"""Two hosts on one machine, with no configuration on either: a writer and a local reader in
one network namespace, a remote reader in another (joined by a veth pair) that is also
another host for loanbus (its own IPC namespace and /dev/shm). Each process discovers as a
default Cyclone DDS process does, by multicast on the veth. The remote reader gets every
6 MB frame by value, the local one the same frames zero-copy.
"""

from __future__ import annotations

from .netns import Lab, Namespace, lab  # noqa: F401  (the fixture)
from .procs import PEER, finish, read_line_then_finish, report, spawn

FRAMES = 100
FRAME_BYTES = 6_220_800


def exchange(
    a: Namespace,
    b: Namespace,
    domain_id: int,
    env_a: dict[str, str] | None = None,
    env_b: dict[str, str] | None = None,
) -> None:
    """A writer and a local reader in ``a``, a remote reader in ``b`` as another host (each
    with only ``env_a`` / ``env_b`` of DDS configuration); every frame arrives, zero-copy in
    ``a`` and by value in ``b``."""
    in_a, in_b = a.cmd(env=env_a), b.cmd(own_host=True, env=env_b)
    n, d = str(FRAMES), str(domain_id)
    w = spawn([*PEER, "writer", "--domain", d, "--frames", n, "--readers", "2"], prefix=in_a)
    local = spawn([*PEER, "reader", "--domain", d, "--frames", n], prefix=in_a)
    remote = spawn([*PEER, "reader", "--domain", d, "--frames", n], prefix=in_b)
    try:
        written = report(w)
        near, _ = read_line_then_finish(local)
        far, _ = read_line_then_finish(remote)
    finally:
        for proc in (local, remote):
            if proc.poll() is None:
                proc.kill()
        finish(w)
    expected = list(range(1, FRAMES + 1))
    assert far["frames"] == expected and far["bad"] == 0, far
    assert far["paths"] == ["by-value"] and far["stats"]["by_value_taken"] == FRAMES
    assert far["stats"]["mapped_pools"] == 0 and far["stats"]["map_failures"] == 0
    assert near["frames"] == expected and near["bad"] == 0, near
    assert near["paths"] == ["zero-copy"] and near["stats"]["mapped_pools"] == 1
    assert near["stats"]["by_value_taken"] == 0
    assert written["paths"] == ["by-value", "zero-copy"]
    stats = written["stats"]
    assert stats["by_value_readers"] == 1 and stats["by_value_writes"] == FRAMES
    assert stats["by_value_bytes"] >= FRAMES * FRAME_BYTES
    print(f"{FRAMES} frames of {FRAME_BYTES} bytes written in {written['seconds']:.2f} s")


def test_a_remote_reader_gets_6mb_frames_by_value_while_a_local_one_maps_them_with_no_configuration(
    lab: Lab,  # noqa: F811
    domain_id: int,
) -> None:
    a, b = lab.namespace(), lab.namespace()
    lab.link(a, b)
    exchange(a, b, domain_id)
