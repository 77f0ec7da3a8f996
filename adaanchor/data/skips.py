"""Counts of training samples skipped because their image could not be read, shared with the data loader's
worker processes, so that the trainer can report them in one line at the end of training.

The counters live in shared memory (``multiprocessing.Array``): forked loader workers share them, and the
mapper holds a reference, so spawned workers receive them too (a multiprocessing array may be passed to a
process as it starts). Counts are per training process; the trainer sums them over processes.
"""

import multiprocessing

from adaanchor.data.image_io import REASONS

_COUNTS = multiprocessing.Array("q", len(REASONS))


def counters():
    """The shared array (for objects that must carry it into spawned workers)."""
    return _COUNTS


def record_skip(reason: str, shared=None) -> None:
    """Count one skipped sample whose image failed with ``reason`` (one of image_io.REASONS)."""
    shared = _COUNTS if shared is None else shared
    with shared.get_lock():
        shared[REASONS.index(reason)] += 1


def skip_counts(shared=None) -> dict:
    """{reason: count} with every reason of image_io.REASONS."""
    shared = _COUNTS if shared is None else shared
    with shared.get_lock():
        return dict(zip(REASONS, shared[:]))


def reset_skip_counts(shared=None) -> None:
    shared = _COUNTS if shared is None else shared
    with shared.get_lock():
        for i in range(len(REASONS)):
            shared[i] = 0


def format_skip_summary(counts: dict) -> str:
    """'Training skipped 3 samples whose image could not be read (2 undecodable, 1 empty); ...' or a
    'no sample skipped' line."""
    total = sum(counts.values())
    if not total:
        return "Training skipped no sample: every image drawn could be read"
    parts = ", ".join(f"{n} {reason}" for reason, n in counts.items() if n)
    noun = "sample" if total == 1 else "samples"
    return (
        f"Training skipped {total} {noun} whose image could not be read ({parts}); each is named in a warning "
        "above, and another image was drawn in its place"
    )
