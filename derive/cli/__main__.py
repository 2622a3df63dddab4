"""``python -m derive.cli``: the ``nnderive`` command."""
import sys

from derive.cli import main

sys.exit(main())
