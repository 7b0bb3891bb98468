"""Platform roles governance (issue 9, R-MOD, R-ADMIN-1..3, R-TRAIN); the guide is docs/roles.md.

``plan`` (roles as code: observe, plan with ``rules.plan_roles``, apply), ``change`` (the
``roles-change`` flow), ``confirm`` (the pause for Discourse's e-mailed admin confirmation,
``CHARTERFLOW_ROLES_*`` settings), ``drift`` (the hourly ``roles-drift-audit``), ``training``
(moderation guides, the Acknowledge button, ``roles-training-reminders``), ``dump`` (``roles
dump``/``import``), ``handlers`` (Discord ``/role`` and the Acknowledge button), ``deploy``.
Changes are applied through the shared applier (``flows.reconcile.reconcile_person``).
"""

from __future__ import annotations
