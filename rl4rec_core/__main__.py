import sys

from rl4rec_core.cli import main

sys.exit(main())
