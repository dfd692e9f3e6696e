"""Strict JSON (docs/tokens.md#strict-json): one object, no duplicate names at any depth, raw member texts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sshmint.strictjson import (
    INVALID_JSON,
    WHITESPACE,
    WHITESPACE_UTF8,
    StrictJSONError,
    dumps,
    parse_object,
    parse_object_members,
    parse_value,
    quote,
)


def test_s2_2_whitespace_set_is_exactly_the_specified_characters() -> None:
    expected = {" ", "\t", "\n", "\x0b", "\x0c", "\r", "\u0085", "\u00a0", "\u1680"}
    expected |= {chr(c) for c in range(0x2000, 0x200B)}
    expected |= {"\u2028", "\u2029", "\u202f", "\u205f", "\u3000"}
    assert set(WHITESPACE) == expected
    assert len(WHITESPACE) == len(expected) == 25
    assert {w.decode("utf-8") for w in WHITESPACE_UTF8} == expected


def test_s8_7_raw_member_text_keeps_inner_whitespace_order_and_number_formatting() -> None:
    text = '{"exp": 2000000000 ,"ctx":  {"b" : 1.50, "a":[1e3,  -0, "x\\u0041"]}\t}'
    members = parse_object_members(text)
    assert [(n, raw) for n, _, raw in members] == [
        ("exp", "2000000000"),
        ("ctx", '{"b" : 1.50, "a":[1e3,  -0, "x\\u0041"]}'),
    ]
    assert members[1][1] == {"b": 1.5, "a": [1000.0, 0, "xA"]}


@pytest.mark.parametrize("raw", ["null", "true", '"s"', "[]", "{}", "-1.5e-3", '[{"a":null}]'])
def test_s8_7_raw_text_of_each_value_kind(raw: str) -> None:
    (member,) = parse_object_members('{"ctx":' + raw + "}")
    assert member[2] == raw
    assert member[1] == json.loads(raw)


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1,"a":2}',
        '{"a":1,"\\u0061":2}',  # docs/tokens.md#strict-json: names compare after decoding escapes
        '{"c":{"a":1,"a":2}}',
        '{"c":{"a":{"b":1,"b":2}}}',
        '{"c":[{"x":1},{"y":[{"z":1,"z":1}]}]}',  # objects nested in arrays
    ],
)
def test_s2_2_duplicate_names_at_any_depth_are_invalid(text: str) -> None:
    for parse in (parse_object_members, parse_object, parse_value):
        with pytest.raises(StrictJSONError) as info:
            parse(text)
        assert info.value.message == INVALID_JSON


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "}",
        "{}}",
        "{}x",
        "{}{}",
        '{"a":1,}',
        '{"a" 1}',
        '{,"a":1}',
        "{'a':1}",
        '{"a":NaN}',
        '{"a":Infinity}',
        '{"a":-Infinity}',
        '{"a":01}',
        '{"a":1.}',
        '{"a":.5}',
        '{"a":+1}',
        '{"a":"\x01"}',  # raw control character in a string
        '{"a":"\\x41"}',
        '{"a":tru}',
        '{"a":[1,]}',
        '{"a":1 2}',
        "[]",
        "null",
        '"x"',
        '{"a":' + "1" * 5000 + "}",  # beyond the interpreter's integer-string limit
        '{"a":' + "[" * 5000 + "]" * 5000 + "}",  # nesting beyond the recursion limit
    ],
)
def test_s2_2_not_one_strict_json_object(text: str) -> None:
    with pytest.raises(StrictJSONError):
        parse_object_members(text)
    with pytest.raises(StrictJSONError):
        parse_object(text)


def test_s2_2_json_whitespace_between_tokens_is_allowed() -> None:
    assert parse_object_members(' \t{ "a" :\t1 , "b":[ 1 ,2 ] } \r\n') == [
        ("a", 1, "1"),
        ("b", [1, 2], "[ 1 ,2 ]"),
    ]


def test_s2_2_unicode_whitespace_is_not_json_whitespace() -> None:
    with pytest.raises(StrictJSONError):
        parse_object_members('{"a":\u00a01}')


def test_empty_object_and_member_order() -> None:
    assert parse_object_members("{}") == []
    assert parse_object_members("{ }") == []
    assert [m[0] for m in parse_object_members('{"z":1,"a":2,"m":3}')] == ["z", "a", "m"]


def test_parse_value_accepts_any_single_value_and_rejects_trailing_data() -> None:
    assert parse_value(' [1, {"a": null}] ') == [1, {"a": None}]
    assert parse_value('"x"') == "x"
    for bad in ("1 2", "", "nul", "[1] x", "NaN"):
        with pytest.raises(StrictJSONError):
            parse_value(bad)


def test_s0_quote_is_json_style() -> None:
    assert quote("foo") == '"foo"'
    assert quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert quote("é<>&") == '"é<>&"'  # UTF-8, not HTML-escaped (docs/README.md#conventions)
    # A lone surrogate (an undecodable byte of a command-line argument) as JSON writes it:
    # an escape, so the quoted text stays valid UTF-8.
    assert quote("a\udcffb") == '"a\\udcffb"'


def test_dumps_keeps_lone_surrogates_encodable() -> None:
    value = parse_value('{"k":"\\ud800x"}')
    text = dumps(value)
    assert text == '{"k":"\\ud800x"}'
    text.encode("utf-8")  # would raise for a raw lone surrogate
    assert dumps({"a": [1, "é"]}, indent=2) == '{\n  "a": [\n    1,\n    "é"\n  ]\n}'


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None)
@given(
    obj=st.dictionaries(st.text(max_size=6), _json_values, max_size=5),
    separators=st.sampled_from([(",", ":"), (", ", ": "), (" ,\t", " :  ")]),
)
def test_agrees_with_json_loads_on_valid_objects(
    obj: dict[str, Any], separators: tuple[str, str]
) -> None:
    text = json.dumps(obj, separators=separators, ensure_ascii=False)
    members = parse_object_members(text)
    assert {n: v for n, v, _ in members} == obj == parse_object(text)
    for name, value, raw in members:
        assert json.loads(raw) == value == obj[name]
        assert raw == raw.strip(" \t")


def _outcome(parse: Any, text: str) -> object:
    try:
        return parse(text)
    except StrictJSONError:
        return StrictJSONError


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.text(alphabet='{}[]":,0123456789 \t\\aeu-.E', max_size=30).map(lambda s: "{" + s),
    )
)
def test_random_text_only_raises_strict_json_error_and_both_parsers_agree(text: str) -> None:
    members = _outcome(parse_object_members, text)
    whole = _outcome(parse_object, text)
    _outcome(parse_value, text)
    if members is StrictJSONError:
        assert whole is StrictJSONError
    else:
        assert isinstance(members, list)
        assert whole == {n: v for n, v, _ in members}
