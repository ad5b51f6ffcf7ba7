"""fastnn.random: a fixed default seed, manual_seed, fork, and one generator per thread."""
import threading

import numpy as np

import fastnn
from fastnn import nn
from fastnn import random as frandom


def test_manual_seed_reseeds_in_place_and_fork_restores():
    gen = frandom.generator()
    assert fastnn.manual_seed(4) is gen
    first = gen.random(3)
    fastnn.manual_seed(4)
    np.testing.assert_array_equal(gen.random(3), first)
    before = frandom.get_state()
    with frandom.fork(9):
        inside = frandom.draw_seed()
    with frandom.fork(9):
        assert frandom.draw_seed() == inside
    assert frandom.get_state() == before
    assert 0 <= inside < 2**31


def test_each_thread_has_its_own_generator_starting_from_the_default_seed():
    fastnn.manual_seed(123)
    results = {}

    def work(key, seed):
        if seed is not None:
            fastnn.manual_seed(seed)
        results[key] = nn.Linear(30, 20).weight.data.copy()

    threads = [threading.Thread(target=work, args=(i, s)) for i, s in
               enumerate([None, 5, 6])]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    fastnn.manual_seed(frandom.DEFAULT_SEED)
    np.testing.assert_array_equal(results[0], nn.Linear(30, 20).weight.data)
    for key, seed in ((1, 5), (2, 6)):
        fastnn.manual_seed(seed)
        np.testing.assert_array_equal(results[key], nn.Linear(30, 20).weight.data)


def test_pytorch_rng_names_seed_initial_seed_states_and_fork_rng():
    """torch.seed / initial_seed / get_rng_state / set_rng_state / random.fork_rng, with
    torch's semantics: initial_seed reports the last seed, fork_rng restores the sequence
    and the seed around its block."""
    fastnn.manual_seed(11)
    assert fastnn.initial_seed() == 11
    state = fastnn.get_rng_state()
    first = nn.Linear(5, 4).weight.data.copy()
    fastnn.set_rng_state(state)
    np.testing.assert_array_equal(nn.Linear(5, 4).weight.data, first)

    fastnn.set_rng_state(state)
    with frandom.fork_rng():
        fastnn.manual_seed(3)
        assert fastnn.initial_seed() == 3
        nn.Dropout(0.5)(np.ones((4, 4), np.float32))
    assert fastnn.initial_seed() == 11
    np.testing.assert_array_equal(nn.Linear(5, 4).weight.data, first)

    with frandom.fork_rng(enabled=False):
        fastnn.manual_seed(3)
    assert fastnn.initial_seed() == 3

    drawn = fastnn.seed()
    assert isinstance(drawn, int) and 0 <= drawn < 2**63
    assert fastnn.initial_seed() == drawn
    after = nn.Linear(5, 4).weight.data.copy()
    fastnn.manual_seed(drawn)
    np.testing.assert_array_equal(nn.Linear(5, 4).weight.data, after)
    assert fastnn.seed() != drawn
    fastnn.manual_seed(frandom.DEFAULT_SEED)


def test_initial_seed_is_per_thread_and_fork_keeps_it():
    fastnn.manual_seed(21)
    seen = {}
    th = threading.Thread(target=lambda: seen.setdefault("fresh", fastnn.initial_seed()))
    th.start()
    th.join()
    assert seen["fresh"] == frandom.DEFAULT_SEED
    with frandom.fork(5):
        assert fastnn.initial_seed() == 5
    assert fastnn.initial_seed() == 21
    fastnn.manual_seed(frandom.DEFAULT_SEED)


def test_set_rng_state_takes_pytorchs_keyword():
    state = fastnn.get_rng_state()
    first = frandom.draw_seed()
    fastnn.set_rng_state(new_state=state)
    assert frandom.draw_seed() == first
