import sys

from rced.cli import main

sys.exit(main())
