"""Progress lines (step, loss, rate, ETA) for long jobs, written to the job's log file."""
from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("unerase")


def setup_logging(log_file: str | None = None) -> None:
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, mode="a"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", handlers=handlers, force=True)
    log.info("running on %s", machine())


def machine() -> str:
    """Where this job runs, for its log (on a cluster each job's node; the provenance manifest's `hardware` is the
    machine that wrote it): host, CPU, and the CUDA devices where torch is already loaded (a table job does not load it)."""
    import platform

    from .hardware import cpu_model

    where = f"{platform.node()}, {cpu_model()}"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        where += ", CUDA " + "; ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return where


class Progress:
    """Logs every `every` steps: where the job stands and when it will end."""

    def __init__(self, name: str, total: int, start: int = 0, every: int | None = None):
        self.name, self.total, self.start = name, total, start
        self.every = every or max(1, total // 20)
        self.t0 = time.perf_counter()
        self.running = None

    def update(self, step: int, loss: float | None = None) -> None:
        if loss is not None:
            self.running = loss if self.running is None else 0.9 * self.running + 0.1 * loss
        done = step + 1
        if done % self.every and done != self.total:
            return
        elapsed = time.perf_counter() - self.t0
        rate = (done - self.start) / max(elapsed, 1e-9)
        eta = (self.total - done) / max(rate, 1e-9)
        loss_txt = f" loss {self.running:.4f}" if self.running is not None else ""
        log.info("%s: step %d/%d%s, %.2f steps/s, ETA %.0fs", self.name, done, self.total, loss_txt, rate, eta)
