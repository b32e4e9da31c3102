"""A bounded, reproducible fuzz campaign and its figures.

Order: first every capture seed cut at every record/block boundary (exhaustive, the same on
every run), then random inputs, target by target in proportion to their weights. Input ``i``
draws from ``random.Random(f"{seed}:{i}")``, so any single input can be rebuilt from the
campaign seed and its index (``python -m tests.fuzz --seed S --index I --save DIR``).

Figures: inputs tried, crashes, and per target the cost per byte of each input. Every labkit
entry point has a fixed cost (imports are warm, but a capture needs a read buffer, a report,
a rendered text), so the cost per byte is ``(time - fixed) / size`` with the fixed cost taken as
the target's 5th-percentile time, over inputs of at least :data:`MIN_TIMED_BYTES`. Times are CPU
time (other processes do not count), and the most expensive inputs per byte are timed again
(best of three, garbage collector paused) until the most expensive one is a retimed one:
one slow run is noise, three are a finding.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import random
import signal
import statistics
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz.targets import TARGETS, Crash, Hang, Target, boundary_inputs, check

#: The slowest input per byte may cost this many times the median; past it, the input itself
#: is grown to tell expensive content (a file of ICMP errors, all decoded one by one; a config
#: of policies, each advised) from a cost that grows with size.
MAX_RATIO = 10.0
#: Inputs smaller than this do not count per byte: their time is the entry point's fixed cost.
MIN_TIMED_BYTES = 16 * 1024
RETIME_MAX = 8  # inputs timed again (best of three) before the slowest is named
#: The scaling check grows each seed to a small size (at least SCALE_SMALL bytes and
#: SCALE_MIN_S CPU seconds more than the seed, at most SCALE_MAX_SMALL bytes) and to
#: SCALE_FACTOR times that: between the two, a quadratic cost per byte grows 9x, a linear one
#: not at all.
SCALE_SMALL, SCALE_MIN_S, SCALE_MAX_SMALL, SCALE_FACTOR = 8 * 1024, 0.01, 8 << 20, 8
SCALE_SEEDS = 6  # seeds per target grown (evenly spaced through its sorted seeds)
#: How often the capture target also writes and re-reads an --annotate copy.
ANNOTATE_EVERY = 3
#: How often a scenario that validates is also built into captures.
BUILD_EVERY = 16


@dataclass(frozen=True)
class Input:
    index: int
    target: str
    seed: str
    mutation: str
    data: bytes

    @property
    def annotate(self) -> bool:
        """Also write: the capture's --annotate copy; a scenario's build (Scapy, ~0.7 s)."""
        every = {"capture": ANNOTATE_EVERY, "scenario": BUILD_EVERY}.get(self.target)
        return every is not None and self.index % every == 0

    @property
    def label(self) -> str:
        """The row of the figures: --annotate runs cost more per byte, so they get their own."""
        if self.annotate:
            return {"capture": "capture+annotate", "scenario": "scenario+build"}[self.target]
        return self.target

    @property
    def work_bytes(self) -> int:
        """Bytes labkit works through: a gzip input counts decompressed (what the reader reads)."""
        if self.data[:2] != b"\x1f\x8b":
            return len(self.data)
        d, n = zlib.decompressobj(wbits=47), 0
        try:
            n += len(d.decompress(self.data))
        except zlib.error:
            pass
        return max(n, len(self.data))


@dataclass(frozen=True)
class CrashReport:
    input: Input
    error: str


@dataclass
class TargetFigures:
    name: str
    inputs: int = 0
    crashes: int = 0
    seconds: float = 0.0
    fixed_s: float = 0.0
    median_us_per_kib: float = 0.0
    slowest_us_per_kib: float = 0.0
    slowest: str = ""  # seed, mutation and size of the slowest input per byte
    #: When the slowest is over MAX_RATIO times the median: that input grown 8x, the cost per
    #: byte of the growth over its own (linear ~1: costly content, quadratic ~8: a blow-up).
    slowest_growth: float | None = None
    timed: int = 0  # inputs large enough to count per byte
    refused: int = 0  # inputs labkit refused with a documented user error (exit 2)
    max_s: float = 0.0  # the most CPU any one input took

    @property
    def ratio(self) -> float:
        return self.slowest_us_per_kib / self.median_us_per_kib if self.median_us_per_kib else 0.0


@dataclass(frozen=True)
class Scaling:
    """One seed grown to ~SCALE_SMALL and ~8x that: the cost of the extra bytes, per KiB."""

    target: str
    seed: str
    small_us_per_kib: float  # from the seed itself to the small input
    large_us_per_kib: float  # from the small input to the large one
    small_bytes: int = 0
    large_bytes: int = 0

    @property
    def ratio(self) -> float:
        return self.large_us_per_kib / self.small_us_per_kib if self.small_us_per_kib > 0 else 0.0


@dataclass
class Figures:
    seed: int
    inputs: int = 0
    crashes: list[CrashReport] = field(default_factory=list)
    seconds: float = 0.0
    targets: dict[str, TargetFigures] = field(default_factory=dict)
    scaling: list[Scaling] = field(default_factory=list)

    @property
    def worst_ratio(self) -> float:
        return max((t.ratio for t in self.targets.values()), default=0.0)

    @property
    def worst_scaling(self) -> Scaling | None:
        return max(self.scaling, key=lambda s: s.ratio, default=None)

    def table(self) -> str:
        rows = [
            f"campaign seed {self.seed}: {self.inputs} inputs, {len(self.crashes)} crashes, "
            f"{self.seconds:.1f} s wall; per input: CPU time, fixed = 5th percentile",
            f"{'target':<17}{'inputs':>7}{'refused':>8}{'crashes':>8}{'fixed ms':>9}{'median us/KiB':>14}"
            f"{'slowest us/KiB':>15}{'ratio':>7}  slowest input per byte",
        ]
        for t in self.targets.values():
            grown = (
                "" if t.slowest_growth is None else f" [grown 8x: {t.slowest_growth:.2f}x per byte]"
            )
            rows.append(
                f"{t.name:<17}{t.inputs:>7}{t.refused:>8}{t.crashes:>8}{t.fixed_s * 1e3:>9.2f}"
                f"{t.median_us_per_kib:>14.1f}{t.slowest_us_per_kib:>15.1f}{t.ratio:>7.1f}  {t.slowest}{grown}"
            )
        if self.scaling:
            rows += [
                "",
                f"scaling: CPU per KiB of growing each seed to a small size, then "
                f"{SCALE_FACTOR}x larger (linear: ratio ~1, quadratic: ~9)",
                f"{'target':<17}{'seed':<40}{'small KiB':>10}{'us/KiB':>8}{'large KiB':>10}"
                f"{'us/KiB':>8}{'ratio':>7}",
            ]
            for sc in self.scaling:
                rows.append(
                    f"{sc.target:<17}{sc.seed:<40}{sc.small_bytes >> 10:>10}{sc.small_us_per_kib:>8.1f}"
                    f"{sc.large_bytes >> 10:>10}{sc.large_us_per_kib:>8.1f}{sc.ratio:>7.2f}"
                )
        return "\n".join(rows)


class _Timer:
    """SIGALRM after ``limit`` seconds raises :class:`Hang` in the running input."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def __enter__(self) -> None:
        def fire(signum, frame):  # noqa: ARG001
            raise Hang(f"no result after {self.limit} s")

        self.old = signal.signal(signal.SIGALRM, fire)
        signal.setitimer(signal.ITIMER_REAL, self.limit)

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.old)


def _schedule(targets: Sequence[Target]) -> list[str]:
    """One round of target names, each as often as its weight, interleaved."""
    total = sum(t.weight for t in targets)
    out, acc = [], {t.name: 0.0 for t in targets}
    for _ in range(total):
        for t in targets:
            acc[t.name] += t.weight / total
        best = max(acc, key=acc.get)
        acc[best] -= 1
        out.append(best)
    return out


def inputs(
    seed: int, count: int, names: Sequence[str] | None = None, boundaries: bool = True
) -> Iterator[Input]:
    """The campaign's inputs, in order: every capture seed cut at every boundary (when the
    capture target runs), then ``count`` random ones. Random input ``k`` draws from
    ``Random(f"{seed}:{k}")``, whatever the number of boundary cuts before it."""
    targets = [t for t in TARGETS.values() if (names is None or t.name in names) and t.available()]
    index = 0
    if boundaries and any(t.name == "capture" for t in targets):
        for data, seed_name, mutation in boundary_inputs():
            yield Input(index, "capture", seed_name, mutation, data)
            index += 1
    order = _schedule(targets)
    for k in range(count):
        name = order[k % len(order)]
        data, seed_name, mutation = TARGETS[name].make(random.Random(f"{seed}:{k}"))
        yield Input(index, name, seed_name, mutation, data)
        index += 1


def one(
    seed: int, index: int, names: Sequence[str] | None = None, boundaries: bool = True
) -> Input:
    """Input ``index`` of the campaign with ``seed`` (to reproduce a crash)."""
    for inp in inputs(seed, index + 1, names, boundaries):
        if inp.index == index:
            return inp
    raise IndexError(index)


def _run(inp: Input, work: Path, limit: float) -> tuple[float, str | None, bool]:
    """(CPU seconds, crash or None, refused as a user error). CPU time: other processes on
    the machine do not count."""
    target = TARGETS[inp.target]
    t0 = time.process_time()
    try:
        with _Timer(limit):
            refused = check(target, inp.data, work, annotate=inp.annotate)
    except Crash as exc:
        return time.process_time() - t0, str(exc), False
    except Hang as exc:
        return time.process_time() - t0, f"hang: {exc}", False
    return time.process_time() - t0, None, refused


def save(report: CrashReport, folder: Path) -> Path:
    """Write a crashing input (and what it did) for a regression test."""
    inp = report.input
    digest = hashlib.sha1(inp.data).hexdigest()[:12]
    out = folder / inp.target / f"{digest}.bin"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(inp.data)
    out.with_suffix(".txt").write_text(
        f"seed: {inp.seed}\nmutation: {inp.mutation}\nindex: {inp.index}\nerror: {report.error}\n"
    )
    return out


def _best_time(
    target: Target, data: bytes, work: Path, limit: float, tries: int = 3, annotate: bool = False
) -> float:
    """Least CPU seconds of ``tries`` runs, the garbage collector paused while timing (a
    collection of the whole heap costs tens of ms and lands on whichever input is running)."""
    best = float("inf")
    for _ in range(tries):
        gc.disable()
        try:
            t0 = time.process_time()
            with contextlib.suppress(Crash, Hang), _Timer(limit):  # a crash was counted already
                check(target, data, work, annotate=annotate)
            best = min(best, time.process_time() - t0)
        finally:
            gc.enable()
    return best


def scaling(names: Sequence[str] | None, work: Path, limit: float) -> list[Scaling]:
    """Grow every seed of every growable target; the extra cost per KiB, small vs large.

    The small size is where the extra bytes cost at least :data:`SCALE_MIN_S` of CPU (timer
    resolution and cache effects stop mattering), the large one :data:`SCALE_FACTOR` times it.
    """
    out = []
    for target in TARGETS.values():
        if target.grow is None or (names is not None and target.name not in names):
            continue
        seeds = target.seeds()
        step = max(1, -(-len(seeds) // SCALE_SEEDS))
        for seed in seeds[::step]:
            base = target.grow(seed.raw, 1)
            t_base = _best_time(target, base, work, limit)
            k = max(2, -(-SCALE_SMALL // len(base)))
            while True:
                small = target.grow(seed.raw, k)
                t_small = _best_time(target, small, work, limit)
                if t_small - t_base >= SCALE_MIN_S or len(small) >= SCALE_MAX_SMALL:
                    break
                k *= 2
            large = target.grow(seed.raw, k * SCALE_FACTOR)
            t_large = _best_time(target, large, work, limit)
            per_kib = [
                max(t1 - t0, 0.0) / (n1 - n0) * 1024 * 1e6
                for (t0, n0), (t1, n1) in (
                    ((t_base, len(base)), (t_small, len(small))),
                    ((t_small, len(small)), (t_large, len(large))),
                )
            ]
            out.append(Scaling(target.name, seed.name, *per_kib, len(small), len(large)))
    return out


def run(
    seed: int = 0,
    count: int = 2000,
    names: Sequence[str] | None = None,
    limit: float = 10.0,
    save_to: Path | None = None,
    boundaries: bool = True,
    progress: bool = False,
    scale: bool = True,
) -> Figures:
    """Run the campaign; return its figures (crashes included, never raised)."""
    figs = Figures(seed)
    samples: dict[str, list[tuple[float, int, Input]]] = {}  # (seconds, size, input), timed ones
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="labkit-fuzz-") as tmp:
        work = Path(tmp)
        for inp in inputs(seed, count, names, boundaries):
            seconds, error, refused = _run(inp, work, limit)
            tf = figs.targets.setdefault(inp.label, TargetFigures(inp.label))
            tf.inputs += 1
            tf.refused += refused
            tf.seconds += seconds
            tf.max_s = max(tf.max_s, seconds)
            figs.inputs += 1
            if error is not None:
                tf.crashes += 1
                report = CrashReport(inp, error)
                figs.crashes.append(report)
                if save_to is not None:
                    save(report, save_to)
                if progress:
                    print(
                        f"CRASH #{inp.index} {inp.target} {inp.seed} {inp.mutation}: {error.splitlines()[0]}"
                    )
            samples.setdefault(inp.label, []).append((seconds, inp.work_bytes, inp))
            if progress and figs.inputs % 250 == 0:
                print(
                    f"{figs.inputs} inputs, {len(figs.crashes)} crashes, {time.perf_counter() - start:.1f} s"
                )
        for name, rows in samples.items():
            _per_byte(figs.targets[name], rows, work, limit)
        if scale:
            figs.scaling = scaling(names, work, limit)
    figs.seconds = time.perf_counter() - start
    return figs


def _per_byte(
    tf: TargetFigures, rows: list[tuple[float, int, Input]], work: Path, limit: float
) -> None:
    times = sorted(s for s, _, _ in rows)
    tf.fixed_s = times[max(0, len(times) // 20 - 1)]
    big = [(s, n, inp) for s, n, inp in rows if n >= MIN_TIMED_BYTES]
    tf.timed = len(big)
    if not big:
        return

    def cost(s: float, n: int) -> float:
        return max(s - tf.fixed_s, 0.0) / n * 1024 * 1e6  # us per KiB

    costs = [cost(s, n) for s, n, _ in big]
    tf.median_us_per_kib = statistics.median(costs)
    # Retime the most expensive until the most expensive is a retimed one (bounded).
    retimed: set[int] = set()
    for _ in range(RETIME_MAX):
        k = max(range(len(big)), key=costs.__getitem__)
        if k in retimed:
            break
        retimed.add(k)
        _, n, inp = big[k]
        costs[k] = cost(
            _best_time(TARGETS[inp.target], inp.data, work, limit, annotate=inp.annotate), n
        )
    k = max(range(len(big)), key=costs.__getitem__)
    inp = big[k][2]
    tf.slowest_us_per_kib = costs[k]
    tf.slowest = f"{inp.seed} {inp.mutation} ({len(inp.data)} B)"
    grow = TARGETS[inp.target].grow
    if tf.ratio > MAX_RATIO and grow is not None:
        with contextlib.suppress(Exception):  # an input too damaged to grow keeps its ratio
            target = TARGETS[inp.target]
            t1 = _best_time(target, inp.data, work, limit, annotate=inp.annotate)
            big_input = grow(inp.data, SCALE_FACTOR)
            t8 = _best_time(target, big_input, work, limit, annotate=inp.annotate)
            own = t1 / len(inp.data)
            extra = max(t8 - t1, 0.0) / (len(big_input) - len(inp.data))
            tf.slowest_growth = extra / own if own else None
