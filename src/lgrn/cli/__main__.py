"""`python -m lgrn.cli ...` is the same as `lgrn ...`."""
import sys

from . import main

sys.exit(main())
