"""A C program compiled against the generated header shares a pool with Python."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np

import loanbus
import loanbus.idl
from loanbus import _layout
from loanbus.idl.checker import check
from loanbus.idl.gen_c import generate

from .ctools import REPO, cc, needs_cc

POINT_CLOUD = REPO / "idl" / "PointCloud.idl"

_HEADER_READER = r"""
#include "pointcloud.h"
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    static loanbus_header h;
    if (argc < 2) return 9;
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(&h, sizeof h, 1, f) != 1) return 1;
    fclose(f);
    printf("magic %.8s\n", (const char *)h.magic);
FIELDS
    printf("type_name %s\n", h.type_name);
    return 0;
}
"""

_POOL_READER = r"""
#define _POSIX_C_SOURCE 200809L
#include "pointcloud.h"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 9;
    int fd = shm_open(argv[1], O_RDONLY, 0);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) { perror("shm_open"); return 1; }
    void *seg = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (seg == MAP_FAILED) { perror("mmap"); return 1; }
    loanbus_header *h = loanbus_segment_header(seg);
    if (memcmp(h->magic, LOANBUS_MAGIC, 8) != 0) return 2;
    if (h->abi_version != LOANBUS_ABI_VERSION || h->segment_size != (uint64_t)st.st_size) return 3;
    if (memcmp(h->type_hash, sensors_PointCloud_TYPE_HASH, 16) != 0) return 4;
    if (h->state != LOANBUS_SEGMENT_READY || h->sample_size != sizeof(sensors_PointCloud)) return 5;
    uint64_t newest = 0, best = 0;
    for (uint64_t i = 0; i < h->slot_count; i++) {
        if (loanbus_segment_slot(seg, i)->state == LOANBUS_SLOT_WRITTEN && loanbus_slot_seq(seg, i) > best) {
            best = loanbus_slot_seq(seg, i);
            newest = i;
        }
    }
    const sensors_PointCloud *pc = loanbus_segment_payload(seg, newest);
    printf("seq %llu\n", (unsigned long long)best);
    printf("sensor_id %u\n", (unsigned)pc->sensor_id);
    printf("frame_id %s\n", pc->header.frame_id.data);
    printf("stamp %d %u\n", pc->header.stamp.sec, pc->header.stamp.nanosec);
    printf("pose %g\n", pc->sensor_to_world[1][1]);
    printf("points %u\n", pc->points.len);
    double sum = 0;
    for (uint32_t i = 0; i < pc->points.len; i++) sum += pc->points.data[i].x;
    printf("sum_x %g\n", sum);
    printf("kind %d\n", (int)pc->points.data[pc->points.len - 1].kind);
    printf("consistent %d\n", loanbus_slot_seq(seg, newest) == best);
    munmap(seg, (size_t)st.st_size);
    close(fd);
    return 0;
}
"""


def _header(tmp_path: Path) -> None:
    text = generate(check(str(POINT_CLOUD)), "idl/PointCloud.idl", "POINTCLOUD_H")
    (tmp_path / "pointcloud.h").write_text(text)


@needs_cc
def test_c_reads_every_header_word_python_encodes(tmp_path: Path) -> None:
    _header(tmp_path)
    layout = _layout.Layout.compute(slot_count=5, reader_rows=3, sample_size=1000)
    encoded = _layout.encode_header(
        layout, type_hash=bytes(range(16)), type_name="sensors::PointCloud",
        writer_guid=b"G" * 16, writer_pid=4242, writer_start_time=77, writer_uid=1000,
        created_ns=123456789, protected_slots=1,
    )  # fmt: skip
    (tmp_path / "header.bin").write_bytes(encoded)
    lines = []
    for name, (_, fmt) in _layout.HEADER_FIELDS.items():
        if fmt.endswith("s"):
            loop = f'for (size_t i = 0; i < sizeof h.{name}; i++) printf("%02x", h.{name}[i]);'
            lines.append(f'    printf("{name} "); {loop} printf("\\n");')
        else:
            lines.append(f'    printf("{name} %llu\\n", (unsigned long long)h.{name});')
    exe = cc(tmp_path, _HEADER_READER.replace("FIELDS", "\n".join(lines)), f"-I{tmp_path}")
    out = subprocess.run([str(exe), str(tmp_path / "header.bin")], capture_output=True, text=True, check=True)
    got = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    data = (tmp_path / "header.bin").read_bytes()
    for name, (offset, fmt) in _layout.HEADER_FIELDS.items():
        (value,) = struct.unpack_from(fmt, data, offset)
        expected = value.hex() if isinstance(value, bytes) else str(value)
        assert got[name] == (expected if name != "magic" else "4c4f414e42555331"), name
    assert got["type_name"] == "sensors::PointCloud"


@needs_cc
def test_c_reads_a_sample_a_python_writer_published(tmp_path: Path, domain_id: int) -> None:
    _header(tmp_path)
    exe = cc(tmp_path, _POOL_READER, f"-I{tmp_path}")
    pc = loanbus.idl.load(POINT_CLOUD)
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "clouds", pc.PointCloud))
        for round_ in range(3):
            loan = writer.get_loan()
            cloud = pc.PointCloud(loan.data)
            cloud.sensor_id = 7 + round_
            cloud.header.frame_id = "lidar"
            cloud.header.stamp.sec, cloud.header.stamp.nanosec = -3, 500
            cloud.sensor_to_world[...] = np.eye(4) * 2
            points = cloud.resize("points", 1000 + round_)
            points["x"] = 1.5
            points["kind"] = pc.PointKind.OBSTACLE
            writer.write(loan)
        result = subprocess.run([str(exe), writer.segment_name], capture_output=True, text=True)
        writer.close()
    assert result.returncode == 0, result.stderr
    got = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert got["seq"] == "3" and got["sensor_id"] == "9"
    assert got["frame_id"] == "lidar" and got["stamp"] == "-3 500" and got["pose"] == "2"
    assert got["points"] == "1002" and float(got["sum_x"]) == 1.5 * 1002
    assert got["kind"] == str(int(pc.PointKind.OBSTACLE)) and got["consistent"] == "1"
