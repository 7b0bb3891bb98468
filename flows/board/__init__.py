"""The Board processes (R-BOARD, R-DIRECT): escalation with the WG's endorsement ballot
(``escalation``, ``endorsement``), the Board's decision from Slack or an operator
(``decision``), and reminders (``reminders``). See flows/README.md, "Board escalation"."""
