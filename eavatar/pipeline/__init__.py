"""The work of each DVC stage (train, evaluate, render, ...): what the CLI runs after parsing."""
