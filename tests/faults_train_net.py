"""``train_net.py`` for the fault-injection tests: the same ``main``, plus one line per iteration on stdout
with the losses Detectron2 logged for it (``LOSSES <iteration> <json>``; gathered over processes, as the
metrics writers see them, not smoothed). Applied at import, so Detectron2's spawned workers get it too."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from detectron2.engine import HookBase, default_argument_parser, launch  # noqa: E402
from detectron2.utils import comm  # noqa: E402

import train_net  # noqa: E402
from adaanchor.engine import AdaAnchorTrainer  # noqa: E402


class PrintLosses(HookBase):
    def after_step(self):
        if comm.is_main_process():
            storage = self.trainer.storage
            losses = {k: h.latest() for k, h in storage.histories().items() if "loss" in k}
            print(f"LOSSES {self.trainer.iter} {json.dumps(losses, sort_keys=True)}", flush=True)


_build_hooks = AdaAnchorTrainer.build_hooks
AdaAnchorTrainer.build_hooks = lambda self: _build_hooks(self) + [PrintLosses()]


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(train_net.main, args.num_gpus, num_machines=1, machine_rank=0, dist_url=args.dist_url, args=(args,))
