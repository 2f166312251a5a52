"""Answer-extraction rules on tricky responses: "A", " B) because", "The best answer is C", "", None."""

import pytest

from evaluation.common import mc

TRICKY = ["A", " B) because", "The best answer is C", "", None]


@pytest.mark.parametrize("response, expected", list(zip(TRICKY, ["A", "B", "T", "", ""])))
def test_letter_before_paren_rekv(response, expected):
    # ReKV takes the first character when there is no ")": "The best answer is C" -> "T" (a miss)
    assert mc.letter_before_paren(response) == expected


def test_letter_before_paren_paren_at_start_and_primer_continuation():
    assert mc.letter_before_paren("(C) the cat") == "C"
    assert mc.letter_before_paren(") oops") == ""
    assert mc.letter_before_paren("D) Individuals must act now.") == "D"


@pytest.mark.parametrize("response, expected", list(zip(TRICKY, ["A", "B", "T", "", ""])))
def test_first_char_streamingbench(response, expected):
    assert mc.first_char(response) == expected


def test_first_char_unstripped_sees_the_space():
    assert mc.first_char(" C", strip=False) == " "


@pytest.mark.parametrize("response, expected", list(zip(TRICKY, ["A", "B) because", "The best answer is C", "", ""])))
def test_stripped_exact(response, expected):
    assert mc.stripped(response) == expected


@pytest.mark.parametrize("response, expected", list(zip(TRICKY, ["A", "B", "C", "", ""])))
def test_videomme_official_extraction(response, expected):
    assert mc.videomme_letter(response) == expected


def test_videomme_extraction_edge_cases():
    assert mc.videomme_letter("The correct answer is (D).") == "D"
    assert mc.videomme_letter("i think it is b") == ""  # lower case never matches
    long_no_letter = "it is impossible to say from these frames which one is right honestly sorry"
    assert mc.videomme_letter(long_no_letter) == ""


@pytest.mark.parametrize("response, expected", list(zip(TRICKY, ["A", "B", "C", "", ""])))
def test_lmms_letter(response, expected):
    assert mc.lmms_letter(response) == expected


def test_lmms_letter_ignores_letters_inside_words():
    assert mc.lmms_letter("Apples are shown, so (B)") == "B"
    assert mc.lmms_letter("E", n_options=4) == ""


@pytest.mark.parametrize("gold, response, hit", [
    ("A", "A", True), ("B", " B) because", True), ("C", "The best answer is C", True),
    ("A", "The best answer is C", False), ("A", "", False), ("A", None, False),
    ("A", "All of them, B", True),  # upstream leniency: any capital A counts for gold A
])
def test_ovo_substring_rule(gold, response, hit):
    assert mc.substring_hit(gold, response) is hit


@pytest.mark.parametrize("response, expected", [("3", "3"), ("1 or 2", "12"), ("about 10 times", "10"), ("", ""), (None, "")])
def test_ovo_rec_digits(response, expected):
    assert mc.digits(response) == expected


def test_last_line_and_option_rendering():
    assert mc.last_line("thinking...\nB") == "B"
    assert mc.last_line(None) is None
    assert mc.render_options(["x", "y"], "ovo") == "A. x; B. y;"
    assert mc.render_options(["x", "y"], "paren_lines") == "(A) x\n(B) y"
    assert mc.render_options(["A. x", "B. y"], "raw_lines") == "A. x\nB. y"
    with pytest.raises(ValueError, match="unknown option style"):
        mc.render_options(["x"], "fancy")
