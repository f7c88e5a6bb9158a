"""The application: store, pipeline stages, routing, API, portal, CLI and settings."""
