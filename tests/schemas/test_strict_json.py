"""The duplicate-key detector and the other strict-JSON helpers of ``schemas._strict_json``."""

import json

import pydantic_core
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas._strict_json import (
    count_keys_and_strings,
    find_unsafe_string,
    has_duplicate_keys,
    json_has_duplicate_keys,
    object_key_count,
    printable,
    string_token_count,
)
from tests.schemas.jsongen import (
    Obj,
    has_duplicates,
    objects_in,
    replace_object,
    token_counts,
    trees,
    write_json,
)


@settings(max_examples=300)
@given(trees(), st.randoms(use_true_random=False))
def test_token_counts_are_exact_for_any_spelling(tree, rnd):
    raw = write_json(tree, rnd).encode()
    members, strings = token_counts(tree)
    assert string_token_count(raw) == strings
    assert object_key_count(raw) == members


@settings(max_examples=300)
@given(trees(), st.data())
def test_detector_flags_exactly_the_documents_with_a_repeated_name(tree, data):
    rnd = data.draw(st.randoms(use_true_random=False))
    objects = [o for o in objects_in(tree) if o.pairs]
    inject = bool(objects) and data.draw(st.booleans())
    if inject:  # repeat one name of a random object, at a random place, with a random value
        target = data.draw(st.sampled_from(objects))
        name, _ = data.draw(st.sampled_from(target.pairs))
        value = data.draw(trees(max_leaves=4))
        at = data.draw(st.integers(0, len(target.pairs)))
        tree = replace_object(tree, target, Obj((*target.pairs[:at], (name, value), *target.pairs[at:])))
    raw = write_json(tree, rnd).encode()
    assert has_duplicates(tree) == inject
    assert json_has_duplicate_keys(raw) == inject

    # The decoder passes a lower bound of the string count when a lax field may have converted a string:
    # the answer must stay exact whatever the bound.
    n_keys, n_strings = count_keys_and_strings(pydantic_core.from_json(raw, allow_inf_nan=True))
    assert (string_token_count(raw) == n_strings) is not inject  # the fast path alone is exact
    assert (object_key_count(raw) == n_keys) is not inject      # and so is the fallback alone
    slack = data.draw(st.integers(0, n_strings))
    assert has_duplicate_keys(raw, n_keys, n_strings - slack) == inject


@pytest.mark.parametrize(
    ("raw", "duplicate"),
    [
        (rb'{"a": 1, "b": 2}', False),
        (rb'{"a": 1, "a": 2}', True),
        (rb'{"a": 1, "\u0061": 2}', True),                        # equal once decoded
        (rb'{"a\\": 1, "a": {"a\\": 2}}', False),                  # escaped backslash before the quote
        (rb'{"a\"": 1, "a\\\"": 2, "a": "\"a\": 3"}', False),      # escaped quotes, and a value that looks like a key
        (rb'{"x": ":", "y": "\":", "z": " :"}', False),           # colons inside string values
        (rb'{"x": [{"k": 1}, {"k": 2}], "y": {"k": {"k": 1}}}', False),
        (rb'{"x": [{"k": 1, "j": 0, "k": 2}]}', True),
        (rb'{"a" : 1 ,  "b"	:	{ "c" :[ ] , "c" : null } }', True),  # whitespace everywhere
        (rb'["a", "a", {"": 1}, {"": 2}]', False),
        (rb'{"": 1, "": 2}', True),
    ],
)
def test_detector_on_hand_written_documents(raw, duplicate):
    assert json_has_duplicate_keys(raw) is duplicate


@pytest.mark.parametrize(
    ("raw", "strings", "members"),
    [
        (rb'{"a\"": "\"", "b": ["\"\"", "\\\""]}', 5, 2),  # escaped quotes, some after escaped backslashes
        (rb'["\\", "\\\\", "x\\\\\"y"]', 3, 0),           # runs of backslashes before a closing quote
        (rb'{"k": "\u0022:", "\u005c": "\/"}', 4, 2),          # escapes that decode to a quote or backslash
        (rb'{"a": ":", "b": " : ", "c": "\":"}', 6, 3),           # values that look like names
    ],
)
def test_token_counts_on_hand_written_documents(raw, strings, members):
    assert string_token_count(raw) == strings
    assert object_key_count(raw) == members
    assert count_keys_and_strings(pydantic_core.from_json(raw)) == (members, strings)


def test_count_keys_and_strings_counts_nested_values():
    value = pydantic_core.from_json(b'{"a": [1, "x", {"b": null, "c": "y"}], "d": true}')
    assert count_keys_and_strings(value) == (4, 6)
    assert count_keys_and_strings([[[[]]]]) == (0, 0)


def test_count_keys_and_strings_does_not_recurse():
    deep: object = "leaf"
    for _ in range(100_000):
        deep = {"k": [deep]}
    assert count_keys_and_strings(deep) == (100_000, 100_001)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"kind": "meter"}, None),
        ({"kind": "meter\u00e9\U0001f600", "x": ["\x7f"]}, None),
        ({"kind": "x\x00"}, "kind contains a control character (U+0000)"),
        ({"kind": "x", "meta": {"tags": ["a", "b\x1f"]}}, "meta.tags[1] contains a control character (U+001F)"),
        ({"kind": "x", "a\x00": 1}, "key 'a\\x00' contains a control character (U+0000)"),
        ({"meta": {"\ud800": 1}}, "key '\\ud800' in meta contains a surrogate code point (U+D800)"),
        ({"role": "\udfff"}, "role contains a surrogate code point (U+DFFF)"),
        ("\n", "<root> contains a control character (U+000A)"),
    ],
)
def test_find_unsafe_string_names_the_place(value, where):
    assert find_unsafe_string(value) == where
    if where is not None:
        assert printable(where) == where


def test_printable_escapes_controls_and_surrogates_only():
    assert printable("kWh 中 é") == "kWh 中 é"
    assert printable("a\x00b\ud800c\n") == "a\\x00b\\ud800c\\n"
    assert "\x00" not in printable(json.loads('"\\u0000"'))
