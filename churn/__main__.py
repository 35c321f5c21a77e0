from churn.cli import main

raise SystemExit(main())
