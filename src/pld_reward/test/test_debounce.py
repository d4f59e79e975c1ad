import pytest

from pld_reward.debounce import Debouncer


def test_k_of_n() -> None:
    d = Debouncer(2, 3)
    assert [d.update(x) for x in (True, False, True, False, False, True, True)] == [
        False, False, True, False, False, False, True,
    ]  # fmt: skip
    d.reset()
    assert d.update(True) is False


def test_pass_through_and_bad_values() -> None:
    d = Debouncer()
    assert [d.update(x) for x in (True, False)] == [True, False]
    with pytest.raises(ValueError):
        Debouncer(3, 2)
    with pytest.raises(ValueError):
        Debouncer(0, 1)
