"""HelloWorld, zero-copy: the classic loaned-sample example in loanbus form.

The type comes from ``idl/HelloWorld.idl`` (``long id; char raw_image_data[1024 * 1024]``),
compiled in-process with ``loanbus.idl.load``.

    python examples/hello_zero_copy/hello.py walkthrough   # best-effort slot reuse, step by step
    python examples/hello_zero_copy/hello.py subscriber    # in one terminal
    python examples/hello_zero_copy/hello.py publisher     # in another
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import loanbus
import loanbus.idl

IDL = Path(__file__).resolve().parents[2] / "idl" / "HelloWorld.idl"
HelloWorld = loanbus.idl.load(str(IDL)).HelloWorld
TOPIC = "HelloWorld"


def walkthrough(domain_id: int) -> None:
    """Best effort, max_samples=1: a pool of 2 slots, and what happens when the writer reuses one."""
    qos = loanbus.Qos(reliability=loanbus.Reliability.BEST_EFFORT, max_samples=1)
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, TOPIC, HelloWorld)
        writer = loanbus.DataWriter(topic, qos=qos)
        reader = loanbus.DataReader(topic, qos=qos)
        writer.wait_for_readers(1, timeout=10)
        reader.wait_for_writers(1, timeout=10)
        print(f"pool of {qos.slot_count} slots of {HelloWorld.__shmem_type__.itemsize:,} bytes")

        loan1 = writer.get_loan()
        HelloWorld(loan1.data).id = 10000
        writer.write(loan1)
        print(f"1. wrote id=10000 into slot {loan1.slot} (sequence number {loan1.sequence_number})")

        loan2 = writer.get_loan()
        HelloWorld(loan2.data).id = 20000
        writer.write(loan2)
        print(f"2. wrote id=20000 into slot {loan2.slot} (sequence number {loan2.sequence_number})")

        samples: list[loanbus.LoanedSample] = []
        deadline = time.monotonic() + 10
        while len(samples) < 2 and time.monotonic() < deadline:
            samples += reader.take(max_samples=8, timeout=1.0)
        first, second = samples[0], samples[1]
        print(f"3. the subscriber took id={HelloWorld(first.data).id} and id={HelloWorld(second.data).id}")

        loan3 = writer.get_loan()  # no free slot: best effort reuses the oldest written one
        print(f"4. a third get_loan() returns slot {loan3.slot} again: the slot of id=10000")
        HelloWorld(loan3.data).id = 999
        now = HelloWorld(first.data).id
        print(f"5. the writer stores 999; the subscriber's first sample now reads id={now}")
        print(f"6. is_data_consistent(first sample) = {reader.is_data_consistent(first)}")
        print(f"   is_data_consistent(second sample) = {reader.is_data_consistent(second)}")
        reader.return_loan(samples)
        writer.write(loan3)


def publisher(domain_id: int, count: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, TOPIC, HelloWorld), qos=_reliable())
        if not writer.wait_for_readers(1, timeout=30):
            sys.exit("no subscriber appeared within 30 s")
        for i in range(count):
            loan = writer.get_loan()
            sample = HelloWorld(loan.data)
            sample.id = i
            sample.raw_image_data[:] = i % 256  # 1 MiB written in place, never copied
            writer.write(loan)
            print(f"published id={i}")
        time.sleep(0.5)  # let the subscriber take the last one before the pool goes away


def subscriber(domain_id: int, count: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, TOPIC, HelloWorld), qos=_reliable())
        got = 0
        deadline = time.monotonic() + 60
        while got < count and time.monotonic() < deadline:
            for s in reader.take(timeout=1.0):
                sample = HelloWorld(s.data)
                intact = bool((sample.raw_image_data == sample.id % 256).all())
                print(f"received id={sample.id} intact={intact} consistent={reader.is_data_consistent(s)}")
                reader.return_loan(s)
                got += 1
        if got < count:
            sys.exit(f"received only {got} of {count} samples")


def _reliable() -> loanbus.Qos:
    return loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=2, max_blocking_time=5.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("role", choices=["walkthrough", "publisher", "subscriber"])
    parser.add_argument("--domain", type=int, default=0)
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()
    if args.role == "walkthrough":
        walkthrough(args.domain)
    elif args.role == "publisher":
        publisher(args.domain, args.count)
    else:
        subscriber(args.domain, args.count)


if __name__ == "__main__":
    main()
