from unsign_worker.cli.main import main

raise SystemExit(main())
