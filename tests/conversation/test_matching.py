"""Reply -> option matching: a table of real-world replies plus property tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whopfunnel_plugin.conversation.matching import Match, match_reply, normalize_text


@dataclass(frozen=True)
class Opt:
    text: str
    synonyms: tuple[str, ...] = ()


TWO = (
    Opt("Trading & Investing", ("trading",)),
    Opt("E-commerce", ("ecom", "online store")),
)
NO_SYNONYM = (Opt("Trading & Investing"), Opt("E-commerce"))
YES_NO = (Opt("Yes, book me"), Opt("No thanks"))
CAFE = (Opt("Café"), Opt("Caf"))
CAF_TEA = (Opt("Caf"), Opt("Tea"))
CAFE_TEA = (Opt("Café"), Opt("Tea"))
CYRILLIC = (Opt("Привет"), Opt("Пока"))
JAPANESE = (Opt("はい"), Opt("いいえ"), Opt("たぶん"))
STOCKS = (Opt("Stocks"), Opt("Stacks"))
SHARED = (Opt("Coaching", ("mentor",)), Opt("Course", ("mentor",)))
DIGIT_TEXT = (Opt("2"), Opt("Now"))
WORD_TEXT = (Opt("Two"), Opt("One"))
TEN = tuple(Opt(f"Plan {letter}") for letter in "abcdefghij")

LONG = "a" * 10_000


def valid(index: int) -> tuple:
    return ("valid", index)


def ambiguous(*candidates: int) -> tuple:
    return ("ambiguous", candidates)


INVALID = ("invalid",)

CASES = [
    # --- digits, decorated -------------------------------------------------------------
    ("1", TWO, valid(0)),
    ("2", TWO, valid(1)),
    ("  2  ", TWO, valid(1)),
    ("2.", TWO, valid(1)),
    ("2!", TWO, valid(1)),
    ("#2", TWO, valid(1)),
    ("(2)", TWO, valid(1)),
    ("option 2", TWO, valid(1)),
    ("Option #2", TWO, valid(1)),
    ("number 2", TWO, valid(1)),
    ("choice 2", TWO, valid(1)),
    ("no. 2", TWO, valid(1)),
    ("2 please", TWO, valid(1)),
    ("option 2 please", TWO, valid(1)),
    ("I choose 1", TWO, valid(0)),
    ("I pick 2", TWO, valid(1)),
    ("I'll take option 2, thank you", TWO, valid(1)),
    ("２", TWO, valid(1)),
    ("2️⃣", TWO, valid(1)),
    ("2⃣", TWO, valid(1)),
    ("②", TWO, valid(1)),
    ("٢", TWO, valid(1)),  # Arabic-Indic digit two
    ("10", TEN, valid(9)),
    # --- digits that name nothing, or several options ----------------------------------
    ("0", TWO, INVALID),
    ("3", TWO, INVALID),
    ("12", TWO, INVALID),
    ("11", TEN, INVALID),
    ("9" * 5000, TWO, INVALID),  # would overflow int()'s digit limit
    ("1 2", TWO, ambiguous(0, 1)),
    ("1 or 2", TWO, ambiguous(0, 1)),
    ("1, 2", TWO, ambiguous(0, 1)),
    ("1 and 2", TWO, ambiguous(0, 1)),
    ("1️⃣ 2️⃣", TWO, ambiguous(0, 1)),
    ("1 or 1", TWO, valid(0)),
    ("1 or 7", TWO, INVALID),
    ("I have 2 kids and 3 dogs", TWO, INVALID),
    ("2 kids", TWO, INVALID),
    ("no", TWO, INVALID),
    # --- ordinals and number words -----------------------------------------------------
    ("first", TWO, valid(0)),
    ("second", TWO, valid(1)),
    ("Second!", TWO, valid(1)),
    ("1st", TWO, valid(0)),
    ("2nd", TWO, valid(1)),
    ("the 2nd one", TWO, valid(1)),
    ("the second one", TWO, valid(1)),
    ("2nd option", TWO, valid(1)),
    ("I’ll take the second one", TWO, valid(1)),
    ("one", TWO, valid(0)),
    ("two", TWO, valid(1)),
    ("TWO", TWO, valid(1)),
    ("option two", TWO, valid(1)),
    ("number one", TWO, valid(0)),
    ("first please", TWO, valid(0)),
    ("first or second", TWO, ambiguous(0, 1)),
    ("third", TWO, INVALID),
    ("no one", TWO, INVALID),  # "no" abbreviates "number" only before digits
    ("tenth", TEN, valid(9)),
    ("10th", TEN, valid(9)),
    ("ten", TEN, valid(9)),
    ("the ninth one", TEN, valid(8)),
    ("eleventh", TEN, INVALID),
    # --- option text and synonyms ------------------------------------------------------
    ("Trading & Investing", TWO, valid(0)),
    ("trading investing", TWO, valid(0)),
    ("TRADING   &   INVESTING!!", TWO, valid(0)),
    ("trading", TWO, valid(0)),
    ("ecom", TWO, valid(1)),
    ("Online-Store", TWO, valid(1)),
    ("e commerce", TWO, valid(1)),
    ("trading", NO_SYNONYM, INVALID),  # no substring matching
    ("investing", NO_SYNONYM, INVALID),
    ("yes", YES_NO, INVALID),
    ("Yes, book me", YES_NO, valid(0)),
    ("yes book me please", YES_NO, valid(0)),
    ("No, thanks.", YES_NO, valid(1)),
    ("I pick trading", TWO, valid(0)),
    ("tra\u200bding", TWO, valid(0)),  # zero-width space inside a word
    ("\u202etrading", TWO, valid(0)),  # right-to-left override
    ("mentor", SHARED, ambiguous(0, 1)),
    ("2", DIGIT_TEXT, valid(0)),  # exact text beats digits
    ("1", DIGIT_TEXT, valid(0)),
    ("two", WORD_TEXT, valid(0)),  # exact text beats number words
    ("one", WORD_TEXT, valid(1)),
    # --- the full rendered option line -------------------------------------------------
    ("1. Trading & Investing", TWO, valid(0)),
    ("2) E-commerce", TWO, valid(1)),
    ("1️⃣ Trading & Investing", TWO, valid(0)),
    ("2. Trading & Investing", TWO, ambiguous(0, 1)),
    # --- accents and non-Latin scripts are kept ----------------------------------------
    ("café", CAFE, valid(0)),
    ("CAFÉ", CAFE, valid(0)),
    ("cafe\u0301", CAFE, valid(0)),  # decomposed é
    ("caf", CAFE, valid(1)),
    ("café", CAF_TEA, INVALID),  # café is not caf, and "caf" is too short for typos
    ("cafe", CAFE_TEA, valid(0)),  # one edit away
    ("привет", CYRILLIC, valid(0)),
    ("ПОКА!", CYRILLIC, valid(1)),
    ("Привт", CYRILLIC, valid(0)),
    ("はい", JAPANESE, valid(0)),
    ("いいえ。", JAPANESE, valid(1)),
    ("たぶん", JAPANESE, valid(2)),
    ("３", JAPANESE, valid(2)),
    # --- typos -------------------------------------------------------------------------
    ("Tradng", TWO, valid(0)),
    ("Tarding", TWO, valid(0)),  # transposition
    ("E-comerce", TWO, valid(1)),
    ("ecomerce", TWO, valid(1)),
    ("trading investign", TWO, valid(0)),
    ("Trdng", TWO, INVALID),  # two edits on a 7-letter word
    ("Stocks", STOCKS, valid(0)),
    ("stcoks", STOCKS, valid(0)),
    ("Stucks", STOCKS, ambiguous(0, 1)),  # one edit from both
    ("Plan x", TEN, ambiguous(*range(10))),
    # --- junk ---------------------------------------------------------------------------
    ("", TWO, INVALID),
    ("   ", TWO, INVALID),
    ("\n\t", TWO, INVALID),
    ("👍", TWO, INVALID),
    ("👍🏽👍", TWO, INVALID),
    ("...?!", TWO, INVALID),
    ("\ud800", TWO, INVALID),  # lone surrogate
    ("\x00\x07\x1b", TWO, INVALID),
    ("\u200d\u200f\ufe0f", TWO, INVALID),
    (LONG, TWO, INVALID),
    ("trading " * 1250, TWO, INVALID),
]


def outcome(match: Match) -> tuple:
    if match.kind == "valid":
        return ("valid", match.index)
    if match.kind == "ambiguous":
        return ("ambiguous", match.candidates)
    return ("invalid",)


def test_table_is_big_enough():
    assert len(CASES) >= 70


@pytest.mark.parametrize(("reply", "options", "expected"), CASES,
                         ids=[f"{i}-{c[0][:24]!r}" for i, c in enumerate(CASES)])
def test_reply_table(reply, options, expected):
    assert outcome(match_reply(reply, options)) == expected


@pytest.mark.parametrize(("reply", "how"), [
    ("Trading & Investing", "text"), ("2", "number"), ("#2", "number"), ("second", "ordinal"),
    ("two", "ordinal"), ("Tradng", "fuzzy"), ("1 2", "number"), ("zzz", ""),
])
def test_how_reports_the_rule(reply, how):
    assert match_reply(reply, TWO).how == how


def test_invalid_and_valid_shapes():
    assert match_reply("nope", TWO) == Match("invalid")
    assert match_reply("2", TWO) == Match("valid", index=1, how="number")
    assert match_reply("1 2", TWO) == Match("ambiguous", candidates=(0, 1), how="number")


def test_no_options_is_invalid():
    assert match_reply("1", ()).kind == "invalid"


def test_long_replies_against_a_long_option():
    # Cost is measured in bench/bench_engine.py; here only the answers are checked.
    long_option = (Opt("x" * 9_999), *TWO)
    assert match_reply("x" * 10_000, long_option) == Match("valid", index=0, how="fuzzy")
    assert match_reply(LONG, long_option).kind == "invalid"
    assert match_reply("1 " * 5_000, long_option).kind == "invalid"
    assert match_reply("\U0001f600" * 10_000, long_option).kind == "invalid"


@pytest.mark.parametrize(("text", "expected"), [
    ("  Trading   &   Investing!! ", "trading investing"),
    ("Café", "café"),
    ("cafe\u0301", "café"),
    ("Straße", "strasse"),
    ("２️⃣", "2"),
    ("tra\u200bd\u200ding", "trading"),
    ("👍", ""),
    ("Привет, мир", "привет мир"),
])
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


# --- properties ------------------------------------------------------------------------

any_text = st.text(st.characters(), max_size=60)  # st.characters() includes surrogates
options_st = st.lists(
    st.builds(Opt, any_text, st.lists(any_text, max_size=3).map(tuple)), min_size=1, max_size=6
)
reply_st = st.one_of(
    any_text,
    st.text(st.characters(), min_size=2_000, max_size=12_000),
    st.sampled_from(["1", "2 or 3", "the second one", "#4", "2️⃣", "", "tenth"]),
)


def check_shape(match: Match, count: int) -> None:
    assert match.kind in ("valid", "invalid", "ambiguous")
    if match.kind == "valid":
        assert match.index is not None and 0 <= match.index < count
        assert match.candidates == ()
    elif match.kind == "ambiguous":
        assert match.index is None
        assert len(match.candidates) >= 2
        assert list(match.candidates) == sorted(set(match.candidates))
        assert all(0 <= i < count for i in match.candidates)
    else:
        assert match.index is None and match.candidates == () and match.how == ""


@settings(max_examples=300, deadline=None)
@given(reply=reply_st, options=options_st)
def test_never_raises_and_results_are_in_range(reply, options):
    check_shape(match_reply(reply, options), len(options))


@settings(max_examples=200, deadline=None)
@given(options=options_st, data=st.data())
def test_an_option_text_matches_itself_or_is_ambiguous(options, data):
    index = data.draw(st.integers(0, len(options) - 1))
    match = match_reply(options[index].text, options)
    check_shape(match, len(options))
    if normalize_text(options[index].text):
        assert match.how == "text"
        assert index in ((match.index,) if match.kind == "valid" else match.candidates)


@settings(max_examples=500, deadline=None)
@given(text=st.text(st.characters()))
def test_normalize_text_is_idempotent(text):
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert once == once.strip() and "  " not in once


def _not_digits(label: str) -> bool:
    return not normalize_text(label).isdecimal()


@settings(max_examples=300, deadline=None)
@given(options=st.lists(
    st.builds(Opt, any_text.filter(_not_digits),
              st.lists(any_text.filter(_not_digits), max_size=3).map(tuple)),
    min_size=1, max_size=12,
), data=st.data())
def test_number_k_always_matches_option_k(options, data):
    k = data.draw(st.integers(1, len(options)))
    decorated = data.draw(st.sampled_from([f"{k}", f"{k}.", f"#{k}", f"({k})", f" {k} "]))
    assert match_reply(decorated, options) == Match("valid", index=k - 1, how="number")


# --- issue 12: joiners, keycaps ------------------------------------------------------------

TRADING = (Opt("Trading & Investing", ("trading",)), Opt("Just exploring", ()))


@pytest.mark.parametrize("reply", ["Trading and Investing", "trading + investing",
                                   "Trading n Investing", "trading & investing", "trading investing"])
def test_ampersand_and_common_joiners_are_the_same(reply):
    assert match_reply(reply, TRADING) == Match("valid", index=0, how="text")


def test_keycap_sequences_read_like_digit_sequences():
    assert match_reply("1️⃣2️⃣", TRADING) == match_reply("1 2", TRADING)
    assert match_reply("1️⃣2️⃣", TRADING).kind == "ambiguous"
    assert match_reply("2️⃣", TRADING) == Match("valid", index=1, how="number")
    ten = tuple(Opt(f"label {w}", ()) for w in "abcdefghij")
    assert match_reply("🔟", ten) == Match("valid", index=9, how="number")


_joiner_words = st.lists(st.text("abcdefghijklmopqrsuvwxyz", min_size=2, max_size=8), min_size=2,
                         max_size=4)


@settings(max_examples=200, deadline=None)
@given(words=_joiner_words, joiner=st.sampled_from([" & ", " and ", " + ", " AND ", " n "]))
def test_property_any_joiner_between_words_names_the_same_option(words, joiner):
    options = (Opt(" & ".join(words), ()), Opt("zz other zz", ()))
    assert match_reply(joiner.join(words), options) == match_reply(" and ".join(words), options)
    assert match_reply(joiner.join(words), options).kind == "valid"


@settings(max_examples=200, deadline=None)
@given(count=st.integers(2, 9), data=st.data())
def test_property_keycaps_behave_like_the_digits_they_decorate(count, data):
    options = tuple(Opt(f"choice {chr(97 + i)}", ()) for i in range(count))
    picks = data.draw(st.lists(st.integers(1, count), min_size=1, max_size=3))
    keycaps = "".join(f"{k}\ufe0f\u20e3" for k in picks)
    assert match_reply(keycaps, options) == match_reply(" ".join(map(str, picks)), options)
