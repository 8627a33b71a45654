"""Parts several probe kinds use: TLS client settings, the HTTP client,
secrets, JSON conditions and presets. A concern lives here once."""
