"""``AdaAnchorCheckpointer``: Detectron2's DetectionCheckpointer made crash-safe and explicit about bad files.

- **Atomic saves.** Detectron2 (fvcore) writes ``model_XXXX.pth`` in place, so a process killed while
  writing leaves a truncated file under its final name, looking complete. Here a checkpoint is written to a
  temporary file in the same folder (``.model_XXXX.pth.tmp-*``), flushed to disk and renamed over its final
  name; ``last_checkpoint`` is rewritten the same way, and only after the checkpoint is complete.
- **Weights-only loading.** ``.pth`` files load with ``torch.load(weights_only=True)`` (tensors and plain
  containers only: no code runs while loading). Detectron2 / Caffe2 ``.pkl`` model-zoo files cannot: they are
  plain pickles (numpy arrays), read by Detectron2 with ``pickle.load``; load them only from a trusted source.
- **Named errors.** A file that cannot be loaded raises :class:`CheckpointLoadError` naming it (and
  ``MODEL.WEIGHTS`` when it came from there), instead of torch's zip or ``OSError: [Errno 22]`` message.
- **Local files only.** A URL (``https://``, ``detectron2://`` model-zoo names) is refused, not downloaded.
- **Fallback on resume.** With ``--resume``, a last checkpoint that cannot be loaded (truncated, corrupt,
  missing) is named in a warning and the newest complete checkpoint beside it is loaded instead.
"""

import logging
import os

import torch
from detectron2.checkpoint import DetectionCheckpointer

from adaanchor.utils.files import atomic_write

logger = logging.getLogger(__name__)


class CheckpointLoadError(RuntimeError):
    """A checkpoint file that cannot be loaded; the message names it."""


class AdaAnchorCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer with atomic saves, weights-only loading, named errors and a resume fallback."""

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        atomic_write(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        path = os.path.join(self.save_dir, "last_checkpoint")
        atomic_write(path, lambda f: f.write(last_filename_basename.encode()))

    def _torch_load(self, f):
        return torch.load(f, map_location=torch.device("cpu"), weights_only=True)

    def _load_file(self, filename):
        try:
            return super()._load_file(filename)
        except Exception as e:
            hint = ""
            if isinstance(e, torch.serialization.pickle.UnpicklingError) or "weights_only" in str(e):
                hint = " It holds objects other than tensors and containers, which weights-only loading refuses."
            raise CheckpointLoadError(
                f"Cannot load checkpoint {filename} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}): "
                f"the file is truncated, corrupt or not a checkpoint.{hint}"
            ) from e

    def load(self, path, checkpointables=None):
        if path and "://" in path and not path.startswith("file://"):
            raise CheckpointLoadError(
                f"Checkpoint {path} is a URL: AdaAnchor downloads nothing; download the file and give its local path"
            )
        if path and not os.path.isfile(path.replace("file://", "", 1)):
            raise CheckpointLoadError(f"Checkpoint {path} not found")
        try:
            return super().load(path, checkpointables=checkpointables)
        except BaseException:
            # Detectron2 leaves its per-load state set when a load fails, and then refuses every later load
            # with a bare AssertionError; clear it so that the fallback can try the next file.
            self._parsed_url_during_load = None
            raise

    def complete_checkpoints(self):
        """The .pth files in save_dir, newest first (by modification time); temporary files excluded."""
        files = [f for f in self.get_all_checkpoint_files() if not os.path.basename(f).startswith(".")]
        return sorted(files, key=lambda f: os.path.getmtime(f), reverse=True)

    def resume_or_load(self, path: str, *, resume: bool = True):
        if not (resume and self.has_checkpoint()):
            try:
                return self.load(path, checkpointables=[])
            except CheckpointLoadError as e:
                raise CheckpointLoadError(f"MODEL.WEIGHTS: {e}") from e
        last = self.get_checkpoint_file()
        candidates = [last] + [f for f in self.complete_checkpoints() if os.path.abspath(f) != os.path.abspath(last)]
        failures = []
        for candidate in candidates:
            try:
                loaded = self.load(candidate)
            except CheckpointLoadError as e:
                failures.append(str(e))
                logger.warning(f"--resume: {e}; trying the newest complete checkpoint beside it")
                continue
            if failures:
                logger.warning(f"--resume: resumed from {candidate} instead of {last}")
            return loaded
        raise CheckpointLoadError(f"--resume: no checkpoint in {self.save_dir} can be loaded: " + "; ".join(failures))


class StrictWeightsCheckpointer(AdaAnchorCheckpointer):
    """Loads a model's weights only when the file holds exactly them: a missing, unexpected or differently
    shaped parameter raises :class:`CheckpointLoadError` (Detectron2 only logs it), for weights that a model uses
    as they are, untrained further (e.g. the tagger of MODEL.AE.TEST.TAGGER_WEIGHTS)."""

    def _load_model(self, checkpoint):
        incompatible = super()._load_model(checkpoint)
        problems = {
            "missing": incompatible.missing_keys,
            "unexpected": incompatible.unexpected_keys,
            "of another shape": [name for name, *_ in incompatible.incorrect_shapes],
        }
        found = "; ".join(f"{what}: {', '.join(keys[:5])}" + (" ..." if len(keys) > 5 else "")
                          for what, keys in problems.items() if keys)  # fmt: skip
        if found:
            raise CheckpointLoadError(f"the checkpoint does not fit the model ({found})")
        return incompatible
