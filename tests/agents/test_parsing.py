"""The lenient action parser: every malformed case becomes an error value, never an exception."""

import pytest

from agents.parsing import clean_argument, clean_thought, parse_action

VALID = ["Retrieve", "Lookup", "Search", "Image2Text", "Finish"]


@pytest.mark.parametrize("text,name,arg", [
    ("Retrieve[Milhouse]", "Retrieve", "Milhouse"),
    ("retrieve[milhouse]", "Retrieve", "milhouse"),               # lower-case name
    ("Retrieve[Milhouse", "Retrieve", "Milhouse"),                # missing closing bracket
    ("Retrieve Milhouse", "Retrieve", "Milhouse"),                # no brackets at all
    ("Search: Simpsons creator", "Search", "Simpsons creator"),   # colon form
    ("I think I should Retrieve[Milhouse] now.", "Retrieve", "Milhouse"),  # prose around it
    ("Finish[yes]\nObservation 3: ok\nThought 4: more", "Finish", "yes"),  # runs past a stop
    ("image 2 text[photo]", "Image2Text", "photo"),               # spaced name
    ("  Lookup[ 'cousin' ]  ", "Lookup", "cousin"),                # quotes and spaces
    ("Finish[" + "x" * 500 + "]", "Finish", "x" * 200),           # runaway argument is cut
])
def test_parses_lenient_forms(text, name, arg):
    parsed = parse_action(text, VALID)
    assert parsed.ok and (parsed.name, parsed.argument) == (name, arg)


@pytest.mark.parametrize("text,fragment", [
    ("", "empty action"),
    ("   \n  ", "empty action"),
    ("Teleport[Mars]", "valid actions: Retrieve"),
    ("I am not sure what to do", "could not read an action"),
    ("z" * 1000, "..."),  # runaway junk is shortened in the message
])
def test_unreadable_actions_are_errors(text, fragment):
    parsed = parse_action(text, VALID)
    assert not parsed.ok and parsed.name == "" and fragment in parsed.error
    assert len(parsed.error) < 300


def test_clean_argument_and_thought():
    assert clean_argument("Milhouse] and more") == "Milhouse"
    assert clean_argument("Retrieve[Paris") == "Paris" and clean_argument("Reflect[wrong") == "wrong"
    assert clean_argument("St. Louis [city]") == "St. Louis [city"  # only a leading call is dropped
    assert clean_argument('"Dover"\nObservation') == "Dover"
    assert clean_thought(" I need   the capital.\nAction 1: Retrieve[x]") == "I need the capital."
