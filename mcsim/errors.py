"""The one exception type for bad input."""


class ScenarioError(ValueError):
    """Bad scenario input: the message names the dotted field, the value and what is allowed."""
