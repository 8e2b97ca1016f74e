"""make bench's floor (issue 15): the thinnest DRF server doing the SQL of one adjustment and
one read. See app.py."""
