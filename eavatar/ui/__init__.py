"""Notebook widgets and views: the expression editor, sparse control in 3D, experiments side by side, the quickstart subject and avatar."""
