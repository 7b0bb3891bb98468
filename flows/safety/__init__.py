"""Community reports and the CoC referral (issue 22, R-SAFE-1/2/3); see README.md."""
