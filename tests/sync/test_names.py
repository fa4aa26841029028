"""Transliteration-tolerant name keys: spelling variants of one name share a key."""

from __future__ import annotations

import pytest
from campsync_sync import fold, name_key, name_keys, similarity


@pytest.mark.parametrize(
    "variants",
    [
        ("Mohammad", "Muhammad", "Mohammed", "MOHAMMAD", "Muḥammad"),
        ("Abdul", "Abdol", "Abdool"),
        ("Stanekzai", "Stanikzai"),
        ("Ahmad", "Ahmed"),
        ("Yusuf", "Yousef", "Yousuf"),
        ("Osman", "Usman"),
        ("Ibrahim", "Ebrahim"),
        ("Qasim", "Kasim"),
        ("Khalid", "Kalid"),
        ("Fatima", "Fatimah"),
        ("Wahid", "Vahid"),
        ("Mustafa", "Mostapha"),
        ("علي", "علی"),  # Arabic and Persian yeh
        ("كريم", "کریم"),  # Arabic and Persian kaf
        ("فاطمة", "فاطمه"),  # teh marbuta and heh
        ("محـــمد", "محمد", "مُحَمَّد"),  # tatweel and vowel marks
        ("أحمد", "احمد", "إحمد"),  # hamza seats
    ],
)
def test_spelling_variants_share_a_key(variants) -> None:
    assert len({name_key(v) for v in variants}) == 1, {v: name_key(v) for v in variants}


@pytest.mark.parametrize(
    ("a", "b"),
    [("Mohammad", "Mahmud"), ("Karim", "Rahim"), ("Zahra", "Zahir"), ("Gul", "Gulbuddin")],
)
def test_different_names_keep_different_keys(a, b) -> None:
    assert name_key(a) != name_key(b)


def test_keys_of_several_names() -> None:
    assert name_keys(["Mohammad Ali", "Muhammad", None, "Stanekzai-Stanikzai", "", "!!", "12"]) == [
        "mhmd",
        "al",
        "stnkz",
    ]
    assert name_key("123") == ""
    assert name_key("Xan") == "ksn"


def test_marks_stay_with_their_word() -> None:
    # Vowel marks are not separators: the marked and unmarked spellings share one key.
    assert name_keys(["مُحَمَّد"]) == name_keys(["محمد"]) == ["محمد"]
    assert name_keys(["Zoë  Ahmad__Khan"]) == ["z", "amd", "kn"]


def test_fold_removes_case_accents_and_marks() -> None:
    assert fold("ÁHMAD") == "ahmad"
    assert fold("مُحَمَّد") == "محمد"


def test_similarity_ranks_spelling_variants_first() -> None:
    names = ["Mohammed", "Stanikzai", None]
    assert similarity("Muhammad Stanekzai", names) > 0.8
    assert similarity("Muhammad Stanekzai", names) > similarity("Karim Popal", names)
    assert similarity("Mohammed", ["Mohammed"]) == 1.0
    assert similarity("", names) == 0.0
    assert similarity("Ali", [None, ""]) == 0.0
    assert similarity("123", ["Ali"]) >= 0.0
