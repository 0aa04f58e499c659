import sys

from novita_flux._cli import main

sys.exit(main())
