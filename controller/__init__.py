"""Controller: fleet, cost database, LUTs and search."""
