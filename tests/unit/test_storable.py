"""`storable`: what no database stores as text (U+0000, surrogates) becomes U+FFFD; the rest is kept."""

from __future__ import annotations

from app.db.base import storable, storable_json


def test_nul_and_surrogates_become_replacement_characters() -> None:
    assert storable("a\x00b") == "a\ufffdb"
    assert storable("lone \ud800 and \udfff") == "lone \ufffd and \ufffd"
    assert storable("\x00\ud83d\ude00") == "\ufffd\ufffd\ufffd"  # two surrogate code points, not a pair


def test_other_text_is_unchanged() -> None:
    texts = ("", "plain ascii", "data:image/png;base64,iVBORw0KGgo=", "猫が走る 🐈", "tab\tnew\nline\x01")
    for text in texts:
        assert storable(text) == text


def test_every_string_of_a_document_is_made_storable_keys_included() -> None:
    document = {"message": "x\x00", "list": ["\ud800", 1, None, True], "nested": {"k\x00": 2.5}}
    assert storable_json(document) == {
        "message": "x\ufffd",
        "list": ["\ufffd", 1, None, True],
        "nested": {"k\ufffd": 2.5},
    }
    assert storable_json(None) is None
    assert storable_json(["ok"]) == ["ok"]
