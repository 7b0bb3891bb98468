"""WG role appointments (R-ROLE-APPOINT, issue 23): Chair and Co-Chair by a WG ballot
(``ballot``), the CoC WG Liaison named by the CoC WG and confirmed by its contact through a
signed link (``coc``, ``links``), the Board Liaison named by the Board with Slack buttons
(``board``), every change checked against R-ROLE-* (``rules.appointments``) and recorded before
it is announced (``common``), and the monthly report of vacant roles (``vacancy``). See
flows/README.md, "WG role appointments"."""
