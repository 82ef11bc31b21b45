import sys

from firmware_export.cli import main

sys.exit(main())
