"""What `edigw mapping` does: static checks, golden examples, starter files and coverage."""
