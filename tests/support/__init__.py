"""What the tests share, in one place instead of imports between conftest modules.

Plugin modules (registered by ``pytest_plugins`` in ``tests/conftest.py``, so their fixtures are
available to every test; a directory's ``conftest.py`` may override one by name, as
``tests/gateway`` does with its SQLite-only ``ledger``):

- ``prefect``: ``prefect_server`` (the session's one real Prefect server);
- ``membership``: ``world`` (the seeded working group on the Forum and Discord sandboxes, a
  ledger, the session's Prefect server) and ``gateway`` (the real gateway in front of it); its
  helpers ``want_role`` (the operator's desired platform role in the ledger) and
  ``without_limits`` (a Discord seed with every bucket out of the way) serve the roles, reports
  and moderation helpers too;
- ``ledger``: ``postgres_server`` (a throwaway PostgreSQL) and the two-backend ``ledger``;
- ``board``, ``reports``: the Board's and the quarterly report's worlds built on ``world``.

Helper modules (imported): ``net`` (the one ``free_port`` and ``LoopbackServer``), ``gateway``
(requests signed as each platform signs them), ``cli`` (``cli_with``), ``browser`` (the headless
Chromium of the browser tests), ``pgcluster`` (a throwaway PostgreSQL cluster's folder and
``initdb``; plain code, ``bench/scale.py`` uses it too), and the constants and helpers of one
directory's tests: ``ideas``, ``roles``, ``moderation``, ``rules``, ``slack``, ``commons``,
``discord``.
Subprocess helpers stay in ``tests/procs.py`` (with ``subprocess_env``) and ``tests/proxy.py``.
"""
