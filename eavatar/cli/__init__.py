"""Stage commands (`eavatar <stage>`), the ones dvc.yaml calls."""
