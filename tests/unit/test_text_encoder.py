"""The sentence encoder batches texts of similar length together and gives each text its own vector back."""

import numpy as np

from components.text_encoder import get_encoder


def test_each_text_gets_its_own_vector_whatever_the_batching() -> None:
    texts = [
        "A long description of a waterproof wood glue that dries clear and holds outdoors in the rain",
        "Heat",
        "",
        "A funny science fiction film from the nineties",
        "Saw",
        "Toy Story (1995) Adventure Animation Children Comedy Fantasy pixar fun",
    ]
    enc = get_encoder()
    batched = enc.encode(texts, batch_size=2)  # sorted by length inside: batches mix the original order
    alone = np.stack([enc.encode([t])[0] for t in texts])
    assert batched.shape == (len(texts), 384)
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    assert np.all(np.abs(np.linalg.norm(batched, axis=1) - 1) < 1e-5)
