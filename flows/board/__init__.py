"""The Board processes (R-BOARD, R-DIRECT): escalation with the WG's endorsement ballot
(``escalation``, ``endorsement``), the Board's decision from Slack or an operator
(``decision``), reminders (``reminders``), and budget requests from the approved amount to
spending (``budget``, R-BUDGET). See flows/README.md, "Board escalation" and "Budgets"."""
