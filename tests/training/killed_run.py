"""Train the toy experiment in a process of its own, to be killed: ``python -m tests.training.killed_run OUT
EPOCHS [slow-steps|slow-writes] [--resume]``.

``slow-steps`` sleeps 20 ms in every training step and prints ``step N`` before it; ``slow-writes`` writes
half of every checkpoint, prints ``writing N`` and sleeps 60 s before finishing it (the test kills the process
there). Without either, it is a plain run.
"""

from __future__ import annotations

import io
import sys
import time

from pyro_partial.training import checkpoint, module, runner
from tests.training.toy import Toy


def slow_steps() -> None:
    step = module.SVIModule.training_step
    count = iter(range(10**9))

    def slow(self, item, batch_idx):
        print(f"step {next(count)}", flush=True)
        time.sleep(0.02)
        return step(self, item, batch_idx)

    module.SVIModule.training_step = slow


def slow_writes() -> None:
    write = checkpoint.atomic_write
    count = iter(range(10**9))

    def slow(path, fill):
        def half_then_wait(f):
            buffer = io.BytesIO()
            fill(buffer)
            data = buffer.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            print(f"writing {next(count)}", flush=True)
            time.sleep(60)
            f.write(data[len(data) // 2 :])

        write(path, half_then_wait)

    checkpoint.atomic_write = slow


if __name__ == "__main__":
    out, epochs, *rest = sys.argv[1:]
    if "slow-steps" in rest:
        slow_steps()
    if "slow-writes" in rest:
        slow_writes()
    resume = ["--resume"] if "--resume" in rest else []
    runner.train(Toy(), ["--no-progress", "--accelerator", "cpu", "--out", out, "--epochs", epochs, *resume])
