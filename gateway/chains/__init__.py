"""Purchase order chains: documents joined by partner and PO number, checked against the
partner's tolerances, findings emitted once as exception.v1 events."""
