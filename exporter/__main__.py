"""`python -m exporter`: the same command line as `readiness-exporter`."""

import sys

from exporter.cli import main

sys.exit(main())
