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
