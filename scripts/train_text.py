"""King James Bible character LM: RevDEQ vs DEQ and explicit baselines (same as
``deq-dynamics train text``; every option of that command is accepted)."""

import sys

from proofs_check.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "text", *sys.argv[1:]]))
