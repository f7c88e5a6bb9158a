"""The durable pipeline: receive, validate and acknowledge, map, route, deliver; one step per transaction."""
