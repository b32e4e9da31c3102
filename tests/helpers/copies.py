"""Frames with copies among them, as a SPAN port or a capture on two interfaces makes them:
the input of the duplicate-frame tests (the rule's and the compiled mask's)."""

from __future__ import annotations

import numpy as np


def frames_with_copies(
    seed: int, count: int, sizes: list[int], storm: float = 0.0
) -> tuple[list[bytes], list[float]]:
    """``count`` steps of random frames (of ``sizes`` bytes), copies 1 to 6 frames and 0 to
    20 ms back (no sum of steps lands on 10 ms), near-copies differing in one byte; with
    ``storm``, the chance of a step being 6 more copies of the last frame at once."""
    rng = np.random.default_rng(seed)
    frames: list[bytes] = []
    times: list[float] = []
    t = 0.0
    for _ in range(count):
        t += float(rng.choice([0.0, 0.002, 0.007, 0.015]))
        back = int(rng.integers(1, 7))
        if storm and frames and rng.random() < storm:
            frames += [frames[-1]] * 6
            times += [t] * 6
            continue
        if frames and rng.random() < 0.3 and back <= len(frames):
            data = bytearray(frames[-back])
            if rng.random() < 0.2:
                data[int(rng.integers(0, len(data)))] ^= 1  # a near-copy
            frames.append(bytes(data))
        else:
            size = int(rng.choice(sizes))
            frames.append(rng.integers(0, 256, size, np.uint8).tobytes())
        times.append(t)
    return frames, times
