"""Ready-to-run ``publisher.py`` and ``subscriber.py`` for the SHMEM_REF types of a file.

Like the zero-copy example the RTI reference generates: the publisher loans a sample, fills
it in place and writes it; the subscriber takes samples, prints them and checks
``is_data_consistent``. ``--type`` picks the type when the file has several.
"""

from __future__ import annotations

from loanbus.idl.gen_python import doc_head, isort_key
from loanbus.idl.model import Array, EnumDef, Primitive, Sequence, Spec, String, StructDef, Type
from loanbus.idl.names import python_members

_SEQUENCE_FILL = 16


def _value(t: Primitive) -> str:
    if t.kind == "boolean":
        return "count % 2 == 0"
    if t.kind in ("float", "double"):
        return "float(count)"
    if t.kind == "char":
        return "65 + count % 26"
    return "count % 100"


def _fill_lines(s: StructDef, target: str, names: dict[int, str]) -> list[str]:
    """Statements that put recognisable values into every member of ``target``."""
    lines: list[str] = []
    attrs = python_members(s)
    for f in s.fields:
        member = f"{target}.{attrs[f.name]}"
        lines += _fill_member(f.type, member, f.name, target, names)
    return lines


def _fill_member(t: Type, member: str, name: str, target: str, names: dict[int, str]) -> list[str]:
    if isinstance(t, Primitive):
        return [f"{member} = {_value(t)}"]
    if isinstance(t, EnumDef):
        enum = names[id(t)]
        return [f"{member} = list({enum})[count % len({enum})]"]
    if isinstance(t, String):
        return [f'{member} = f"sample {{count}}"[: {t.bound}]']
    if isinstance(t, StructDef):
        return _fill_lines(t, member, names)
    if isinstance(t, Array) and isinstance(t.element, Primitive):
        return [f"{member}[...] = {_value(t.element)}"]
    if isinstance(t, Sequence) and isinstance(t.element, (Primitive, StructDef)):
        length = f"min({t.bound}, 1 + count % {_SEQUENCE_FILL})"
        view = f'{target}.resize("{name}", {length})'
        if isinstance(t.element, Primitive):
            return [f"{view}[...] = {_value(t.element)}"]
        lines = [f"items = {view}"]
        for g in t.element.fields:
            if isinstance(g.type, Primitive):
                lines.append(f'items["{g.name}"] = {_value(g.type)}')
        return lines if len(lines) > 1 else [f"{view}  # elements left zeroed"]
    return [f"# {member}: left zeroed (fill it with your data)"]


_HEADER = '''{head}

{role} for the SHMEM_REF types of the file:{types}

{usage}
{hint}
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import loanbus
'''


def _imports(package: str, names: list[str]) -> str:
    """The generated package and loanbus's runtime, in the order ruff's isort wants
    (both third-party, as they are in a project that uses generated code)."""
    ordered = sorted(names, key=isort_key)
    if len(f"from {package} import {', '.join(ordered)}") <= 100:
        generated = f"from {package} import {', '.join(ordered)}\n"
    else:
        generated = f"from {package} import (\n" + "".join(f"    {n},\n" for n in ordered) + ")\n"
    runtime = "from loanbus.idl.runtime import StructView\n"
    return "".join(sorted([generated, runtime], key=lambda line: line.split()[1]))


def publisher(spec: Spec, source: str, package: str, names: dict[int, str]) -> str:
    types = spec.loanable
    used = {names[id(s)] for s in types}
    fills = []
    for s in types:
        used |= _enums_used(s, names)
        body = _fill_lines(s, "sample", names)
        fills.append(
            f"\n\ndef fill_{names[id(s)]}(sample: {names[id(s)]}, count: int) -> None:\n"
            f'    """Put recognisable values into every member of ``{s.fqn}`` (use your data)."""\n'
            + "".join(f"    {line}\n" for line in body)
        )
    usage = (
        "Run:  python publisher.py [--type NAME] [--topic NAME] [--domain D] [--count N]\n"
        "                          [--period SECONDS] [--wait SECONDS]"
    )
    text = _HEADER.format(
        head="\n".join(doc_head(source)),
        role="Publisher",
        types="".join(f"\n    {s.fqn}" for s in types),
        usage=usage,
        hint="Start the subscriber first, in another terminal:  python subscriber.py",
    )
    text += _imports(package, sorted(used))
    text += '\nV = TypeVar("V", bound=StructView)\n'
    text += "".join(fills)
    text += _PUBLISH
    table = "".join(
        f'    "{names[id(s)]}": lambda a: publish({names[id(s)]}, fill_{names[id(s)]}, a),\n' for s in types
    )
    description = "Write loaned samples of an IDL type."
    return text + _main(table, names[id(types[0])], description, _PUBLISHER_OPTIONS, "publish")


def subscriber(spec: Spec, source: str, package: str, names: dict[int, str]) -> str:
    types = spec.loanable
    usage = (
        "Run:  python subscriber.py [--type NAME] [--topic NAME] [--domain D] [--count N]\n"
        "                           [--timeout SECONDS]"
    )
    text = _HEADER.format(
        head="\n".join(doc_head(source)),
        role="Subscriber",
        types="".join(f"\n    {s.fqn}" for s in types),
        usage=usage,
        hint="Then start the publisher in another terminal:  python publisher.py",
    )
    text += _imports(package, sorted({names[id(s)] for s in types}))
    text += '\nV = TypeVar("V", bound=StructView)\n'
    text += _SUBSCRIBE
    table = "".join(f'    "{names[id(s)]}": lambda a: subscribe({names[id(s)]}, a),\n' for s in types)
    description = "Take and print loaned samples of an IDL type."
    return text + _main(table, names[id(types[0])], description, _SUBSCRIBER_OPTIONS, "subscribe to")


def _enums_used(s: StructDef, names: dict[int, str]) -> set[str]:
    found: set[str] = set()
    for f in s.fields:
        t = f.type
        if isinstance(t, EnumDef):
            found.add(names[id(t)])
        elif isinstance(t, StructDef):
            found |= _enums_used(t, names)
    return found


_PUBLISH = '''

def publish(cls: type[V], fill: Callable[[V, int], None], args: argparse.Namespace) -> int:
    """Loan, fill in place and write ``args.count`` samples; returns the exit status."""
    qos = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_blocking_time=5.0)
    with loanbus.DomainParticipant(domain_id=args.domain) as participant:
        topic = loanbus.Topic(participant, args.topic or cls.__name__, cls)
        with loanbus.DataWriter(topic, qos=qos) as writer:
            if not writer.wait_for_readers(1, timeout=args.wait):
                print(f"no reader matched within {args.wait} s", file=sys.stderr)
                return 1
            count = 0
            while args.count == 0 or count < args.count:
                loan = writer.get_loan()
                sample = cls(loan.data)  # a typed view of the loaned shared memory
                fill(sample, count)
                print(f"writing {sample!r}", flush=True)
                writer.write(loan)
                count += 1
                time.sleep(args.period)
    return 0
'''

_SUBSCRIBE = '''

def subscribe(cls: type[V], args: argparse.Namespace) -> int:
    """Take and print samples until ``args.count`` arrived or ``args.timeout`` passed."""
    qos = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_blocking_time=5.0)
    received = 0
    with loanbus.DomainParticipant(domain_id=args.domain) as participant:
        topic = loanbus.Topic(participant, args.topic or cls.__name__, cls)
        with loanbus.DataReader(topic, qos=qos) as reader:
            print(f"waiting for {cls.type_name} samples on topic {topic.name}", flush=True)
            deadline = time.monotonic() + args.timeout
            while (args.count == 0 or received < args.count) and time.monotonic() < deadline:
                samples = reader.take(max_samples=8, timeout=0.5)
                for taken in samples:
                    if not taken.info.valid:
                        continue
                    text = repr(cls(taken.data))  # reads the writer's memory, no copy
                    consistent = reader.is_data_consistent(taken)
                    number = taken.info.sequence_number
                    print(f"received #{number}: {text} consistent={consistent}", flush=True)
                    received += 1
                reader.return_loan(samples)
    return 0 if args.count == 0 or received >= args.count else 1
'''


_COMMON_OPTIONS = """\
    parser.add_argument(
        "--type", choices=sorted(EXAMPLES), default="{default}", help="the type to {verb}"
    )
    parser.add_argument("--topic", help="topic name (default: the type's name)")
    parser.add_argument("--domain", type=int, default=0, help="DDS domain id")
"""
_PUBLISHER_OPTIONS = """\
    parser.add_argument("--count", type=int, default=10, help="samples to write (0: until Ctrl-C)")
    parser.add_argument("--period", type=float, default=0.5, help="seconds between writes")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a subscriber")
"""
_SUBSCRIBER_OPTIONS = """\
    parser.add_argument("--count", type=int, default=10, help="samples to take (0: no limit)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to keep reading")
"""


def _main(table: str, default: str, description: str, options: str, verb: str) -> str:
    """The command line of one example: the options both share, then its own ``options``."""
    common = _COMMON_OPTIONS.format(default=default, verb=verb)
    return f'''

EXAMPLES: dict[str, Callable[[argparse.Namespace], int]] = {{
{table}}}


def main() -> int:
    parser = argparse.ArgumentParser(description="{description}")
{common}{options}    args = parser.parse_args()
    return EXAMPLES[args.type](args)


if __name__ == "__main__":
    sys.exit(main())
'''
