"""`python -m grafana.generator [--check]`: write or check the dashboards."""

import sys

from grafana.generator.build import main

sys.exit(main())
