"""Community guides and training sessions (R-GUIDE, issue 23): ``library`` (the guide files),
``publish`` (one post per guide per platform, edited in place; newcomers pointed at them),
``help`` (``/help [topic]``), ``training`` (sessions as platform events), ``handlers``
(inbox routes) and ``deploy`` (the Prefect deployments)."""
