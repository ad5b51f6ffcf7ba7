"""Found by probing attention and the normalisation layers against torch 2.13:
scaled_dot_product_attention refuses an attn_mask that would grow the attention
weights (PyTorch adds it in place) and checks enable_gqa's head counts of key and value
both, as PyTorch's."""
import numpy as np
import pytest

import fastnn.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _both(q, k, v, **kw):
    """(torch's result or exception type, fastnn's)."""
    tkw = {a: torch.from_numpy(b) if isinstance(b, np.ndarray) else b for a, b in kw.items()}
    try:
        theirs = TF.scaled_dot_product_attention(*map(torch.from_numpy, (q, k, v)), **tkw)
        theirs = theirs.numpy()
    except Exception as ex:   # noqa: BLE001
        theirs = type(ex)
    try:
        ours = F.scaled_dot_product_attention(q, k, v, **kw)
    except Exception as ex:   # noqa: BLE001
        ours = type(ex)
    return theirs, ours


@pytest.mark.parametrize("mask_shape", [(2, 3, 5), (1, 3, 5), (2, 1, 3, 5), (4, 1, 1)])
def test_attention_mask_that_grows_the_weights_is_refused(mask_shape):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s) for s in ((4, 3, 2), (4, 5, 2), (4, 5, 3)))
    for mask in (rng.random(mask_shape) < 0.5, rng.standard_normal(mask_shape)):
        if mask_shape == (4, 1, 1):   # (broadcasts to (4, 3, 5) without growing it)
            theirs, ours = _both(q, k, v, attn_mask=mask)
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
            continue
        q2 = q[0]   # weights (3, 5): a mask of more axes would grow them
        theirs, ours = _both(q2, k[0], v[0], attn_mask=mask)
        assert theirs is RuntimeError and ours is RuntimeError


@pytest.mark.parametrize("shapes, ok", [
    (((1, 4, 2, 3), (1, 2, 3, 3), (1, 1, 3, 2)), True),
    (((1, 4, 2, 3), (1, 1, 3, 3), (1, 2, 3, 2)), True),
    (((1, 1, 2, 3), (1, 1, 3, 3), (1, 2, 3, 2)), False),   # value's 2 heads do not divide 1
    (((1, 2, 3), (1, 3, 3), (2, 3, 2)), False),
    (((1, 3, 2, 3), (1, 2, 3, 3), (1, 2, 3, 2)), False)])
def test_grouped_query_attention_checks_key_and_value_heads(shapes, ok):
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal(s) for s in shapes)
    theirs, ours = _both(q, k, v, enable_gqa=True)
    if ok:
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    else:
        assert theirs is RuntimeError and ours is RuntimeError


def test_grouped_query_attention_needs_a_heads_axis():
    x = np.ones((3, 4))
    theirs, ours = _both(x, x, x, enable_gqa=True)
    assert theirs is IndexError and ours is IndexError
