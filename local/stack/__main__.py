"""``python -m local.stack``: what ``make run`` starts."""
import sys

from local.stack.launcher import main

if __name__ == "__main__":
    sys.exit(main())
