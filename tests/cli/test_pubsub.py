"""``loanbus pub`` / ``loanbus sub`` exchange samples of IDL types between two processes."""

from __future__ import annotations

import re

from tests.cli import HELLO, POINTCLOUD, start, stop


def test_pub_and_sub_exchange_helloworld_samples_with_a_counter_and_a_set_field(domain_id: int) -> None:
    d = str(domain_id)
    sub = start("sub", "hello", "--idl", HELLO, "--count", "20", "--each", "--domain", d)
    pub = start(
        "pub", "hello", "--idl", HELLO, "--count", "20", "--rate", "100", "--readers", "1",
        "--set", "raw_image_data=7", "--domain", d,
    )  # fmt: skip
    sub_out, sub_err = sub.communicate(timeout=120)
    pub_out, pub_err = pub.communicate(timeout=120)
    assert sub.returncode == 0, sub_err
    assert pub.returncode == 0, pub_err
    lines = [line for line in sub_out.splitlines() if " samples, " in line]
    ids = [int(m.group(1)) for line in lines if (m := re.search(r": id=(\d+) ", line))]
    assert ids == list(range(20))  # the counter went into the first integer field, in order
    assert all("raw_image_data[1048576] min=7 max=7 mean=7" in line for line in lines)
    assert not [line for line in lines if "inconsistent" in line]
    assert (
        "received 20 samples of HelloWorld on 'hello' (20 checked for consistency, 0 inconsistent)" in sub_out
    )
    assert "wrote 20 samples of HelloWorld on 'hello' (1 reader(s) matched, 0 slot(s) still held)" in pub_out


def test_sub_checks_the_consistency_of_every_sample_it_takes_not_only_the_printed_ones(
    domain_id: int,
) -> None:
    d = str(domain_id)
    sub = start("sub", "every", "--idl", HELLO, "--count", "40", "--interval", "600", "--domain", d)
    pub = start(
        "pub", "every", "--idl", HELLO, "--count", "40", "--rate", "0", "--readers", "1", "--domain", d
    )
    sub_out, sub_err = sub.communicate(timeout=120)
    _pub_out, pub_err = pub.communicate(timeout=120)
    assert sub.returncode == 0 and pub.returncode == 0, sub_err + pub_err
    printed = [line for line in sub_out.splitlines() if " samples, " in line]
    assert len(printed) < 40  # one line per --interval, and the last sample
    assert (
        "received 40 samples of HelloWorld on 'every' (40 checked for consistency, 0 inconsistent)" in sub_out
    )


def test_pub_sets_nested_and_string_fields_that_sub_summarises(domain_id: int) -> None:
    d = str(domain_id)
    sub = start(
        "sub", "cloud", "--idl", POINTCLOUD, "--type", "PointCloud", "--count", "3", "--each", "--domain", d
    )
    pub = start(
        "pub", "cloud", "--idl", POINTCLOUD, "--type", "sensors::PointCloud", "--count", "3",
        "--readers", "1", "--set", "sensor_id=3", "--set", "header.frame_id=lidar", "--set", "header.seq=41",
        "--set", "intrinsics=[[1, 0, 2], [0, 1, 3], [0, 0, 1]]", "--domain", d,
    )  # fmt: skip
    sub_out, sub_err = sub.communicate(timeout=120)
    _pub_out, pub_err = pub.communicate(timeout=120)
    assert sub.returncode == 0 and pub.returncode == 0, sub_err + pub_err
    last = next(line for line in sub_out.splitlines() if line.startswith("3 samples"))
    assert "sensor_id=3" in last and "header.frame_id='lidar'" in last and "header.seq=41" in last
    assert "intrinsics[3x3] min=0 max=3 mean=0.8889" in last
    assert "received 3 samples of sensors::PointCloud" in sub_out


def test_sub_stops_with_one_line_when_the_topic_carries_another_type(domain_id: int) -> None:
    d = str(domain_id)
    pub = start("pub", "hello", "--idl", HELLO, "--rate", "20", "--domain", d)
    try:
        sub = start("sub", "hello", "--idl", POINTCLOUD, "--domain", d)
        _out, err = sub.communicate(timeout=120)
    finally:
        stop(pub)
    assert sub.returncode == 1
    assert err.strip().splitlines() == [
        "loanbus sub: error: topic 'hello': the writer in pid "
        f"{pub.pid} publishes type 'HelloWorld', not 'sensors::PointCloud' as --idl/--type say"
    ]
