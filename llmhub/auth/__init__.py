"""Who is asking: passwords, sessions, API keys, CSRF, roles and limits."""
