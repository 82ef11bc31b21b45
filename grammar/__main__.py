import sys

from grammar.cli import main

sys.exit(main())
