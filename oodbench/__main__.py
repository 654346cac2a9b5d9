"""``python -m oodbench ...``, the same as the ``oodbench`` command; what ``torchrun -m oodbench ...`` starts."""

import sys

from oodbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
