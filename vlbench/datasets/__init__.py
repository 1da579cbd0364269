"""Readers for on-disk dataset formats and the procedural shapes world."""
