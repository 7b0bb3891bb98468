"""The membership lifecycle (issue 8) as Prefect flows: intake and identity confirmation,
eligibility, the approval ballot, onboarding, renewal, leave and removal. See flows/README.md."""
