"""``python -m alt_lightning`` = ``alt``."""

from alt_lightning.cli import main

raise SystemExit(main())
