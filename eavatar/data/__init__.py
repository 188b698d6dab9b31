"""Subjects: the one on-disk format every source (synthetic, phone video, NeRSemble) produces."""
