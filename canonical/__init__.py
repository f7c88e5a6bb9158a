"""The canonical event model: schemas, the event envelope and the error root shared by all parts."""
