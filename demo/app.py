"""Start the side-by-side demo: `python demo/app.py [KEY=VALUE ...]`.

The same as `sam3-radio demo`; the arguments are Hydra overrides of
configs/demo.yaml, e.g. `python demo/app.py weights=random`.
"""

import sys

from sam3_radio.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
