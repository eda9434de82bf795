"""One cancel exception and one way of warning the user (napari_higt.errors)."""

import threading
import warnings

import pytest

from napari_higt.errors import Cancelled, HIGTWarning, UserFacingError, report_warnings, warn_user


def test_warn_user_is_a_userwarning_outside_a_handler():
    with pytest.warns(HIGTWarning, match="2 slides skipped"):
        warn_user("2 slides skipped")
    assert issubclass(HIGTWarning, UserWarning)
    assert not issubclass(Cancelled, UserFacingError)


def test_handler_gets_the_messages_of_its_own_thread_only():
    got, other = [], []

    def elsewhere():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warn_user("from another thread")
        other.extend(str(w.message) for w in caught)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a real warning here would raise
        with report_warnings(got.append):
            warn_user("one")
            t = threading.Thread(target=elsewhere)
            t.start()
            t.join()
            warn_user("two")
    assert got == ["one", "two"] and other == ["from another thread"]

