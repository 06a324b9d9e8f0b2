import sys

from drowsy.cli import main

sys.exit(main())
