"""Stage I of EAvatar: the canonical head as a neural SDF, DMTet extraction, the generative
geometry prior (providers, alignment, loss). Plain PyTorch; nothing here imports nerfstudio."""
