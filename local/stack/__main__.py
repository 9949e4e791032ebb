"""``python -m local.stack``: what ``make run`` starts."""
import sys

from local.stack.command import main

if __name__ == "__main__":
    sys.exit(main())
