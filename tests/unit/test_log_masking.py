"""Masking secret values in served logs: every occurrence becomes ``***``, including one that
a follower's read cuts in two, and reading piece by piece gives exactly what a reader of the
whole file gets."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lepton.control.logs import Masker, read_log


def test_every_occurrence_is_masked_and_short_values_are_not() -> None:
    masker = Masker(["s3cr3t", "abc"])

    text = masker.text("s3cr3t, s3cr3ts3cr3t and abc")

    assert text == "***, ****** and abc"


def test_the_longest_value_wins_where_two_start_together() -> None:
    masker = Masker(["token", "token-with-suffix"])

    assert masker.text("a token-with-suffix, a token") == "a ***, a ***"


def test_a_value_cut_by_the_read_limit_is_held_back_then_masked_whole(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_bytes(b"0123456789 the key is hf_abcdefgh, done\n")
    masker = Masker(["hf_abcdefgh"])

    first = read_log(log, 0, ended=True, masker=masker, limit=26)  # "...is hf_a" | "bcdefgh"
    second = read_log(log, first.offset, ended=True, masker=masker, limit=100)

    assert first.text == "0123456789 the key is " and not first.complete
    assert second.text == "***, done\n" and second.complete


def test_a_running_jobs_tail_that_may_start_a_value_waits_for_more(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_bytes(b"epoch 1\nhf_abc")
    masker = Masker(["hf_abcdefgh"])

    running = read_log(log, 0, ended=False, masker=masker)
    ended = read_log(log, running.offset, ended=True, masker=masker)

    assert running.text == "epoch 1\n" and not running.complete
    assert ended.text == "hf_abc" and ended.complete  # the log is whole: it was not the value


@pytest.mark.parametrize("seed", range(5))
def test_reading_piece_by_piece_gives_what_the_whole_file_gives(seed: int) -> None:
    # A two-letter alphabet makes values overlap, repeat and prefix each other all the time.
    rng = random.Random(seed)
    for _ in range(400):
        values = ["".join(rng.choice("ab") for _ in range(rng.randint(4, 8))) for _ in range(3)]
        masker = Masker(values)
        data = bytes(rng.choice(b"ab") for _ in range(rng.randint(0, 60)))
        whole = masker.mask(data, final=True)[0]

        got, offset, written = b"", 0, 0
        while True:  # the file grows while a follower reads pieces of it
            written = min(len(data), written + rng.randint(0, 9))
            piece = data[offset:written][: rng.randint(1, 12)]
            final = written == len(data) and offset + len(piece) == written and rng.random() < 0.5
            text, used = masker.mask(piece, final=final)
            got, offset = got + text, offset + used
            if final:
                break

        assert got == whole, (values, data)
