"""Partition code that psaspm itself provides (NS agents)."""
