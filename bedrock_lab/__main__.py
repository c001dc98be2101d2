import sys

from bedrock_lab.cli import main

sys.exit(main())
