"""The REST API: dead letters and message timelines for operators, own messages for partners."""
