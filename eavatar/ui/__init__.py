"""Notebook widgets and views: the expression editor, sparse control in 3D, experiments side by side, the quickstart subject and avatar."""

from eavatar.quiet import silence_known_warnings

silence_known_warnings()  # the notebooks show our output, not nerfstudio's deprecation notices
