"""Platform roles governance (issue 9): roles as code (plan, then apply) and operator role changes.

``flows.roles.plan`` reads the desired roles from the ledger and the observed ones from each
platform and plans with ``rules.plan_roles``; ``flows.roles.change`` is the ``roles-change`` flow.
Both apply through the membership applier (``flows.membership.roles.reconcile_person``).
"""

from __future__ import annotations
