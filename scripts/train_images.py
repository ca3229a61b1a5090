"""Fashion-MNIST: RevDEQ vs DEQ and explicit baselines (same as ``deq-dynamics train
images``; every option of that command is accepted, e.g. ``--scale full``)."""

import sys

from proofs_check.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "images", *sys.argv[1:]]))
