"""Run `sam3-radio` with the fast connected components, as a subprocess of the tests."""

import sys

from fast_components import install

from sam3_radio.cli import main

if __name__ == "__main__":
    install()
    sys.exit(main(sys.argv[1:]))
