"""Staff and officer accounts: sign-in, invitations, roles and scopes."""
