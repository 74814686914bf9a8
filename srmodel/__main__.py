import sys

from srmodel.cli import main

sys.exit(main())
