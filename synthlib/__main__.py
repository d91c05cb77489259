from synthlib.cli import main

raise SystemExit(main())
