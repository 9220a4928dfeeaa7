from metaembed.ui_check.check import main

raise SystemExit(main())
