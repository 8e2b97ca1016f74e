"""make bench's peer (issue 15): the conventional Django build a team would write instead of
the product. See bench/README.md, "Round two: the floor and the peer"."""
