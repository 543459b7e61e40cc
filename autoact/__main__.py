import sys

from autoact.cli import main

sys.exit(main())
