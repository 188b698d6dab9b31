"""Reports made from finished runs: the ablation's tables, docs page and figures."""
