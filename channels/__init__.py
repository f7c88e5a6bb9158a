"""Transports: local folder, SFTP, webhook, CSV portal upload and ERP adapters."""
