"""Evaluate SAM 3 with a chosen trunk on the coco_box task (see configs/eval/coco_box.yaml).

    python eval/coco_box.py model=radio_h data.KEY=VALUE ...
    python eval/coco_box.py -m model=pe,radio_h,radio_so400m ...        # one run per backbone
    torchrun --nproc-per-node 8 eval/coco_box.py model=pe ...          # sharded over 8 GPUs
"""

import hydra
from omegaconf import DictConfig

from sam3_radio.evaluate import CONFIG_DIR, evaluate


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="coco_box")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
