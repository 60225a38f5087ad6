"""``loanbus.idl.load()``: generated types in-process, their field access and their twins."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import loanbus
import loanbus.idl
from loanbus.idl import IdlError
from loanbus.idl.checker import check
from loanbus.idl.gen_c import generate as generate_c
from loanbus.types import ShmemType, as_shmem_type

from .ctools import CORPUS, INCLUDE_DIRS, REPO


@pytest.fixture(scope="module")
def pc() -> ModuleType:
    return loanbus.idl.load(REPO / "idl" / "PointCloud.idl")


def test_load_returns_the_types_constants_and_enums_of_the_file(pc: ModuleType) -> None:
    assert list(pc.LOANABLE) == [pc.PointCloud]
    assert pc.MAX_POINTS == 100000
    assert [k.name for k in pc.PointKind] == ["UNKNOWN", "GROUND", "OBSTACLE", "VEGETATION"]
    assert pc.PointCloud.type_name == "sensors::PointCloud"
    assert pc.PointCloud.keys == ("sensor_id",)
    assert not hasattr(pc.Point, "__shmem_type__")  # only SHMEM_REF types are loanable


def test_a_generated_class_is_a_topic_type_like_a_shmem_type(pc: ModuleType) -> None:
    shmem = as_shmem_type(pc.PointCloud)
    assert shmem == ShmemType("sensors::PointCloud", pc.PointCloud.dtype)
    assert shmem.type_hash == pc.PointCloud.type_hash and len(shmem.type_hash) == 16
    assert shmem.by_value is pc.PointCloudByValue
    with pytest.raises(TypeError, match=r"lacks @transfer_mode\(SHMEM_REF\)"):
        as_shmem_type(pc.Point)


def test_a_topic_of_a_struct_without_shmem_ref_says_which_annotation_it_lacks_where_and_how_to_add_it(
    pc: ModuleType, domain_id: int
) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp, pytest.raises(TypeError) as refused:
        loanbus.Topic(dp, "points", pc.Point)
    message = str(refused.value)
    assert message == (
        f"IDL struct sensors::Point ({REPO / 'idl' / 'PointCloud.idl'}:21) is not loanable: it lacks "
        "@transfer_mode(SHMEM_REF). Write @transfer_mode(SHMEM_REF) on the line before 'struct Point' "
        "and compile the IDL file again (loanbus idlc, or loanbus.idl.load)"
    )
    line = (REPO / "idl" / "PointCloud.idl").read_text().splitlines()[20]
    assert line.strip().startswith("struct Point")  # the line the message names
    assert "not a loanable type" not in message and "generated IDL class" not in message


def test_a_by_value_twin_given_as_a_topic_type_names_the_loanable_class_to_use(pc: ModuleType) -> None:
    with pytest.raises(TypeError) as refused:
        as_shmem_type(pc.PointCloudByValue)
    assert str(refused.value) == (
        "PointCloudByValue is the by-value (cyclonedds) class of IDL struct sensors::PointCloud: "
        "give the topic PointCloud, not its by-value twin"
    )
    with pytest.raises(TypeError, match=r"IDL struct sensors::Point .* lacks @transfer_mode"):
        as_shmem_type(pc.PointByValue)  # the twin of a struct that is not loanable either


def test_dtypes_are_explicitly_little_endian(pc: ModuleType) -> None:
    header = pc.Header.dtype
    assert header.fields["seq"][0].str == "<u8"
    assert pc.Time.dtype.fields["sec"][0].str == "<i4"
    assert pc.Point.dtype.fields["x"][0].str == "<f4"


def test_the_c_header_carries_the_same_type_name_and_hash(pc: ModuleType) -> None:
    header = generate_c(check(str(REPO / "idl" / "PointCloud.idl")), "PointCloud.idl", "G")
    expected = "".join(f"\\x{b:02x}" for b in pc.PointCloud.type_hash)
    assert f'#define sensors_PointCloud_TYPE_HASH "{expected}"' in header
    assert '#define sensors_PointCloud_TYPE_NAME "sensors::PointCloud"' in header


def test_members_read_and_write_the_wrapped_array_in_place(pc: ModuleType) -> None:
    data = np.zeros((), dtype=pc.PointCloud.dtype)
    cloud = pc.PointCloud(data)
    cloud.sensor_id = 7
    cloud.header.seq = 123  # a nested struct is a view of the same memory
    cloud.header.stamp.nanosec = 5
    cloud.header.frame_id = "lidar_front"
    cloud.sensor_to_world[...] = np.eye(4)
    assert data["sensor_id"] == 7
    assert data["header"]["seq"] == 123 and data["header"]["stamp"]["nanosec"] == 5
    assert cloud.header.frame_id == "lidar_front"
    assert int(data["header"]["frame_id"]["len"]) == len("lidar_front")
    assert cloud.sensor_to_world.shape == (4, 4) and data["sensor_to_world"][2, 2] == 1.0
    assert isinstance(cloud.sensor_id, int) and isinstance(cloud.header.stamp.nanosec, int)


def test_a_bounded_sequence_reads_as_a_view_of_its_valid_part(pc: ModuleType) -> None:
    cloud = pc.PointCloud()
    assert cloud.points.shape == (0,)
    points = np.zeros(3, dtype=pc.Point.dtype)
    points["x"] = [1.0, 2.0, 3.0]
    points["kind"] = pc.PointKind.GROUND
    cloud.points = points  # writes the length word and the elements in place
    assert int(cloud.array["points"]["len"]) == 3
    view = cloud.points
    assert view.shape == (3,) and list(view["x"]) == [1.0, 2.0, 3.0]
    view["y"] = 9.0  # a view, not a copy
    assert cloud.array["points"]["data"][1]["y"] == 9.0
    grown = cloud.resize("points", 5)
    assert grown.shape == (5,) and cloud.points.shape == (5,)
    assert pc.Point(cloud.points[1, ...]).kind is pc.PointKind.GROUND


def test_sequence_and_string_bounds_are_enforced(pc: ModuleType) -> None:
    cloud = pc.PointCloud()
    with pytest.raises(ValueError, match="do not fit sequence bound 100000"):
        cloud.points = np.zeros(100001, dtype=pc.Point.dtype)
    with pytest.raises(ValueError, match=r"outside 0\.\.100000"):
        cloud.resize("points", 100001)
    with pytest.raises(ValueError, match="65 bytes do not fit string<64>"):
        cloud.header.frame_id = "x" * 65
    cloud.header.frame_id = "é" * 32  # 64 bytes of UTF-8 fit exactly
    assert cloud.header.frame_id == "é" * 32
    with pytest.raises(ValueError, match="no sequence member"):
        cloud.resize("header", 1)


def test_a_corrupt_length_word_is_reported_not_trusted(pc: ModuleType) -> None:
    cloud = pc.PointCloud()
    cloud.array["points"]["len"] = 100001
    with pytest.raises(ValueError, match="exceeds its bound"):
        _ = cloud.points
    cloud.array["header"]["frame_id"]["len"] = 65
    with pytest.raises(ValueError, match="exceeds its bound"):
        _ = cloud.header.frame_id


def test_a_read_only_sample_can_be_read_but_not_written(pc: ModuleType) -> None:
    data = np.zeros((), dtype=pc.PointCloud.dtype)
    data["sensor_id"] = 3
    data.flags.writeable = False
    cloud = pc.PointCloud(data)
    assert cloud.sensor_id == 3 and cloud.points.shape == (0,)
    with pytest.raises(ValueError, match="read-only"):
        cloud.sensor_id = 4
    with pytest.raises(ValueError, match="read-only"):
        cloud.header.frame_id = "no"


def test_wrapping_anything_but_one_sample_of_the_type_is_refused(pc: ModuleType) -> None:
    with pytest.raises(TypeError, match="wraps dtype"):
        pc.PointCloud(np.zeros((), dtype=pc.Point.dtype))
    with pytest.raises(TypeError, match=r"a\[i, \.\.\.\]"):
        pc.Point(np.zeros(3, dtype=pc.Point.dtype))
    with pytest.raises(TypeError, match="0-d numpy array"):
        pc.Point(b"\0" * 20)


def test_the_by_value_twin_round_trips_through_cdr(pc: ModuleType) -> None:
    cloud = pc.PointCloud()
    cloud.sensor_id = 2
    cloud.header.frame_id = "map"
    cloud.header.stamp.sec = -5
    cloud.intrinsics[...] = np.arange(9, dtype=np.float32).reshape(3, 3)
    points = cloud.resize("points", 2)
    points["z"] = [0.5, -0.5]
    points["kind"] = [pc.PointKind.OBSTACLE, pc.PointKind.VEGETATION]
    twin = cloud.to_by_value()
    assert type(twin) is pc.PointCloudByValue
    assert pc.PointCloudByValue.__idl_typename__ == "sensors::PointCloud"
    assert twin.header.frame_id == "map" and len(twin.points) == 2
    assert twin.points[1].kind is pc.PointKindByValue.VEGETATION
    decoded = pc.PointCloudByValue.deserialize(twin.serialize())
    assert decoded == twin
    back = pc.PointCloud.from_by_value(decoded)
    assert back.array.tobytes() == cloud.array.tobytes()
    out = np.zeros((), dtype=pc.PointCloud.dtype)
    decoded.to_sample(out)
    assert out.tobytes() == cloud.array.tobytes()
    assert pc.PointCloudByValue.from_sample(out) == twin


def test_char_and_octet_arrays_twin_as_dds_expects() -> None:
    hello = loanbus.idl.load(REPO / "idl" / "HelloWorld.idl").HelloWorld()
    hello.id = 1
    hello.raw_image_data[:5] = np.frombuffer(b"hello", dtype=np.uint8)
    twin = hello.to_by_value()
    assert twin.raw_image_data[:5] == list("hello") and len(twin.raw_image_data) == 1 << 20
    image = loanbus.idl.load(REPO / "idl" / "Image.idl").Image()
    image.pixels[:3] = [1, 2, 3]
    image.sequence = 99  # declared as _sequence: an escaped IDL keyword
    twin = image.to_by_value()
    assert isinstance(twin.pixels, bytes) and twin.pixels[:3] == b"\x01\x02\x03"
    assert type(image).from_by_value(type(twin).deserialize(twin.serialize())).sequence == 99


def test_names_that_collide_with_keywords_get_an_underscore() -> None:
    names = loanbus.idl.load(CORPUS / "good" / "names.idl")
    awkward = names.Awkward()
    awkward.from_ = 1
    awkward.class_ = 2
    awkward.array_ = 3
    awkward.keys_ = 4
    awkward.in_ = 5
    awkward.lambda_ = names.Choice.pass_
    awkward.data.dtype_ = 6
    awkward.sequence = [1, 2]
    awkward.string = "abc"
    assert awkward.array["from"] == 1 and awkward.array["array"] == 3
    assert awkward.array["data"]["dtype"] == 6 and list(awkward.sequence) == [1, 2]
    twin = awkward.to_by_value()
    assert twin.from_ == 1 and twin.lambda_ is names.ChoiceByValue.pass_
    decoded = type(twin).deserialize(twin.serialize())
    assert names.Awkward.from_by_value(decoded).array.tobytes() == awkward.array.tobytes()


def test_same_local_names_in_two_modules_get_scoped_class_names() -> None:
    modules = loanbus.idl.load(CORPUS / "good" / "modules.idl")
    assert modules.outer_a_Point.type_name == "outer::a::Point"
    assert modules.outer_b_Point.type_name == "outer::b::Point"
    assert modules.outer_Scene.type_name == "outer::Scene"
    assert modules.other_Scene.type_name == "other::Scene"
    assert modules.Line.dtype.fields["to"][0] == modules.outer_b_Point.dtype


def test_includes_are_found_beside_the_file_and_on_the_search_path() -> None:
    module = loanbus.idl.load(CORPUS / "good" / "includes.idl", include_dirs=INCLUDE_DIRS)
    assert module.Measurement.type_name == "measure::Measurement"
    assert module.MAX_NAME == 31 and module.Unit.SECOND == 1
    with pytest.raises(IdlError, match=r"cannot find 'units\.idl'"):
        loanbus.idl.load(CORPUS / "good" / "includes.idl")


def test_constants_follow_c_arithmetic() -> None:
    k = loanbus.idl.load(CORPUS / "good" / "consts.idl")
    assert (k.B, k.C, k.D, k.E, k.F, k.G, k.H, k.INV) == (13, 2, -3, -1, 19, 7, 64, -1)
    assert k.NEG == -(1 << 63) and k.BIG == (1 << 64) - 1
    assert k.GREETING == "hello, world" and k.NEWLINE == "\n" and k.HALF == 0.5
    assert k.DEFAULT_MODE is k.Mode.AUTO and k.Mode.MANUAL == 11
    assert k.Sized.dtype.fields["e"][0].shape == (21,)


def test_structs_with_unbounded_members_exist_by_value_only() -> None:
    plain = loanbus.idl.load(CORPUS / "good" / "byvalue_only.idl")
    assert not hasattr(plain, "Log") and hasattr(plain, "LogByValue")
    log = plain.WrappedByValue(log=plain.LogByValue(text="x" * 1000, values=[1, 2]), level=3)
    assert plain.WrappedByValue.deserialize(log.serialize()) == log


def test_load_reports_errors_with_their_position(tmp_path: Path) -> None:
    idl = tmp_path / "bad.idl"
    idl.write_text("struct S {\n    long x;\n    Unknown u;\n};\n")
    with pytest.raises(IdlError) as info:
        loanbus.idl.load(idl)
    assert str(info.value).startswith(f"{idl}:3:5: unknown name 'Unknown'")
    assert isinstance(info.value, loanbus.LoanbusError)


def test_two_loads_give_independent_modules_with_equal_types() -> None:
    a = loanbus.idl.load(REPO / "idl" / "HelloWorld.idl")
    b = loanbus.idl.load(REPO / "idl" / "HelloWorld.idl")
    assert a is not b and a.HelloWorld is not b.HelloWorld
    assert as_shmem_type(a.HelloWorld) == as_shmem_type(b.HelloWorld)


def test_the_compiler_never_imports_cyclonedds_only_generated_code_does() -> None:
    imported = set()
    for source in (REPO / "loanbus" / "idl").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
    assert "lark" in imported and not any(m.startswith("cyclonedds") for m in imported)


def test_importing_loanbus_idl_does_not_load_the_parser() -> None:
    code = "import sys, loanbus.idl; print('lark' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
