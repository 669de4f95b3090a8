from tinytrack.cli import main

raise SystemExit(main())
