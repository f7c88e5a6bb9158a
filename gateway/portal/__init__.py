"""The partner portal: server-rendered pages where a partner's people upload CSV files."""
