import pytest

from eavatar.data.subject import load_subject
from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject


@pytest.fixture(scope="session")
def tiny_subject(tmp_path_factory):
    """A 32 px synthetic subject: 4 cameras, 2 training and 1 test sequences of 3 instants (a few seconds to make)."""
    cfg = SyntheticConfig(resolution=32, n_cameras=4, n_train_sequences=2, n_test_sequences=1, timesteps_per_sequence=3, mesh_subdivisions=3, supersampling=2)
    return load_subject(generate_synthetic_subject(tmp_path_factory.mktemp("geometry") / "subject", cfg))
