"""Parking, listing, replaying and discarding dead letters."""
