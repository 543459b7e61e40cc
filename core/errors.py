"""The few exception types autoact raises for configuration, data and endpoint problems.

Recoverable problems inside an episode (a bad action, a tool failure) are not exceptions:
they become observations the agent can read.
"""

from __future__ import annotations


class AutoactError(Exception):
    """Base class: every error autoact raises on purpose derives from it."""


class DataError(AutoactError):
    """A data file is missing or malformed; the message names FILE:LINE."""


class ConfigError(AutoactError):
    """A setting, flag or configuration file is invalid."""


class EndpointError(AutoactError):
    """A model endpoint failed after retries; the message names the URL and model."""


class ServeError(AutoactError):
    """The FastChat stack could not be started or stopped."""
