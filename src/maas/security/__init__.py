"""Security: API keys, authentication, access control, rate limits and version signatures."""
