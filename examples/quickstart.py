"""The smallest loanbus program: loan a frame, fill it in place, take it zero-copy.

Run: python examples/quickstart.py [DOMAIN]
"""

import sys

import numpy as np

import loanbus

Frame = loanbus.ShmemType("demo::Frame", np.dtype([("seq", "<u8"), ("pixels", "u1", (1080, 1920, 3))]))
domain_id = int(sys.argv[1]) if len(sys.argv) > 1 else 0

with loanbus.DomainParticipant(domain_id=domain_id) as dp:
    topic = loanbus.Topic(dp, "frames", Frame)
    qos = loanbus.Qos(reliability=loanbus.Reliability.BEST_EFFORT, max_samples=1)
    with loanbus.DataWriter(topic, qos=qos) as writer, loanbus.DataReader(topic, qos=qos) as reader:
        writer.wait_for_readers(1, timeout=10)

        loan = writer.get_loan()  # a writable view into shared memory
        loan.data["seq"] = 10000
        loan.data["pixels"][:, :, 0] = 255  # red, written in place
        writer.write(loan)  # only a reference (slot, sequence number) goes to the reader

        for sample in reader.take(max_samples=8, timeout=5.0):
            red = int(sample.data["pixels"][0, 0, 0])  # a read-only view of the same RAM
            print(f"seq={int(sample.data['seq'])} red={red} consistent={reader.is_data_consistent(sample)}")
            reader.return_loan(sample)
