"""The identifier-leak scan over a file's bytes: every identifier found wherever it stands (quoted,
at a line's start or end, in any column, before sentence punctuation, after CRLF), never inside a
longer token, and never split or invented at a block boundary, whatever the block size."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from egress_review.checks import identifiers
from egress_review.checks.identifiers import TOKEN_SPLIT, IdentifierIndex

IDS = ["P000123", "P000456", "2021-03-04", "04/03/2021", "75011", "1850775123456"]


def scan(tmp_path: Path, content: bytes, values=IDS, name: str = "out.csv") -> tuple[list[str], int]:
    path = tmp_path / name
    path.write_bytes(content)
    return IdentifierIndex.of_values(values).scan_file(path)


@pytest.mark.parametrize(("content", "expected"), [
    (b"who,n\nP000123,30\n", ["P000123"]),  # first column
    (b"n,who\n30,P000123\n", ["P000123"]),  # last column, line end
    (b"n,who\r\n30,P000123\r\n", ["P000123"]),  # CRLF
    (b'n,who\n30,"P000123"\n', ["P000123"]),  # quoted
    (b"n;who\n30;'P000123'\n", ["P000123"]),  # semicolons, single quotes
    (b"n\twho\n30\tP000123", ["P000123"]),  # TSV, no final line end
    (b"P000123", ["P000123"]),  # the whole file
    (b"seen on 04/03/2021. Then P000456!\n", ["04/03/2021", "P000456"]),  # sentence punctuation
    (b"really P000123?!. And 75011:\n", ["P000123", "75011"]),  # up to three marks
    (b"code=75011 (P000456)\n", ["75011", "P000456"]),  # = and brackets
    (b"\xef\xbb\xbfP000123,1\n", ["P000123"]),  # UTF-8 byte order mark
    (b"a\xc2\xa0P000123\xe2\x80\xaf1\n", ["P000123"]),  # no-break spaces (French number formatting)
    (b"caf\xe9,P000123\n", ["P000123"]),  # Latin-1 byte elsewhere: the identifier is still found
])
def test_an_identifier_is_found_wherever_it_stands(tmp_path, content, expected):
    assert scan(tmp_path, content) == (expected, len(expected))


@pytest.mark.parametrize("content", [
    b"who,n\nP0001234,30\n",  # a longer token
    b"who,n\nXP000123,30\n",  # a prefix in front
    b"n\n175011\n750110\n",  # a postcode inside a longer number
    b"t\n2021-03-04T10:00\n",  # a date inside a timestamp
    b"v\nP000123.5\n",  # a decimal point inside the token is not sentence punctuation
    b"v\nP000123_x\n",
])
def test_no_false_hit_on_part_of_a_longer_token(tmp_path, content):
    assert scan(tmp_path, content) == ([], 0)


def test_every_occurrence_is_counted_and_the_list_is_bounded(tmp_path):
    content = b"".join(b"P000123,P000456\n" for _ in range(100))
    found, total = scan(tmp_path, content)
    assert total == 200 and len(found) == 50 and set(found) == {"P000123", "P000456"}


def test_values_with_spaces_are_found_as_whole_fields(tmp_path):
    found, total = scan(tmp_path, b'name,n\n"Jean Dupont",3\nJean,4\nDupont Jean,5\n', values=["Jean Dupont", "P1"])
    assert (found, total) == (["Jean Dupont"], 1)
    found, total = scan(tmp_path, b"P1,Jean Dupont.\nP1\n", values=["Jean Dupont", "P1"])
    assert (sorted(found), total) == (["Jean Dupont", "P1", "P1"], 3)  # each counted once


def test_an_empty_value_in_the_index_matches_nothing(tmp_path):
    assert scan(tmp_path, b"a,,b\n\n,\n", values=["", "  ", "P1"]) == ([], 0)


def reference(text: str, values: set[str]) -> list[str]:
    """What a token is, by definition (TOKEN_SPLIT), the slow way."""
    return [t for t in TOKEN_SPLIT.split(text) if t in values]


@pytest.mark.parametrize("block", [7, 64, 1000])
def test_any_block_size_finds_exactly_what_the_definition_finds(tmp_path, monkeypatch, block):
    """Random text of identifiers, near-identifiers and every separator, scanned in tiny blocks so
    that block boundaries fall everywhere: the same tokens, in the same order, as TOKEN_SPLIT."""
    monkeypatch.setattr(identifiers, "BLOCK", block)
    pieces = IDS + ["P0001234", "XP000123", "7501", "x", "12.5", "a.b", "", "\u00e9t\u00e9"]
    separators = [",", ";", "\t", " ", "\n", "\r\n", '"', "'", "(", ")", "=", "|", "\xa0", ". ", "!\n", "?", ":"]
    rng = random.Random(block)
    text = "".join(rng.choice(pieces) + rng.choice(separators) for _ in range(5000))
    found, total = scan(tmp_path, text.encode())
    expected = reference(text, set(IDS))
    assert total == len(expected) and found == expected[:50]


def test_a_line_longer_than_the_blocks_is_never_cut_into_a_false_hit(tmp_path, monkeypatch):
    """A stretch with no separator longer than four blocks cannot be an identifier: it is skipped
    whole, so its pieces never match, and the tokens after it still do."""
    monkeypatch.setattr(identifiers, "BLOCK", 8)
    content = b"ok,P000123\n" + b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxP000456" + b",P000456\nP000123"
    assert scan(tmp_path, content) == (["P000123", "P000456", "P000123"], 3)


def test_a_text_is_scanned_the_same_way():
    index = IdentifierIndex.of_values(IDS)
    assert index.scan_text("Patient P000456 (75011), seen 04/03/2021.\nP000456") == ["04/03/2021", "75011",
                                                                                     "P000456"]


def test_values_holding_apostrophes_commas_or_spaces_are_found_in_cells_and_text(tmp_path):
    """Names and addresses hold separators: "O'Brien" beside commas or in a sentence, "Smith, John"
    quoted in a CSV cell, an address with both a space and an apostrophe."""
    index = IdentifierIndex.of_values(["P0042", "O'Brien", "12 Rue de l'Eglise", "Smith, John", "Jean Dupont"])
    csv = tmp_path / "out.csv"
    csv.write_text('id,name,address\nP0042,O\'Brien,"12 Rue de l\'Eglise"\n1,"Smith, John",x\n2,Jean Dupont,y\n')
    found, count = index.scan_file(csv)
    assert sorted(found) == ["12 Rue de l'Eglise", "Jean Dupont", "O'Brien", "P0042", "Smith, John"]
    assert count == 5
    assert index.scan_text("Seen O'Brien today; not O'Briens.") == ["O'Brien"]
    assert index.scan_text("Smith, Johnny and Smith John") == []
