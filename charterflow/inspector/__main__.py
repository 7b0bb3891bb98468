"""``python -m charterflow.inspector``: the sandboxes and the inspector of `charterflow up`."""

from charterflow.inspector.serve import main

main()
