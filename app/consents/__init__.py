"""consents domain."""
