"""Every setting is documented in the README, and bad values are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.errors import ConfigError
from broker.settings import SETTINGS, load_limits

README = (Path(__file__).parent.parent / "README.md").read_text()


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.name for s in SETTINGS])
def test_every_setting_is_documented(setting):
    assert setting.env in README


def test_environment_overrides_defaults():
    assert load_limits({"ACCORD_MAX_RESULT_ROWS": "10"}).max_result_rows == 10
    assert load_limits({}).max_timeout_s == 300.0


@pytest.mark.parametrize("value", ["lots", "-1", "0"])
def test_bad_values_are_refused(value):
    with pytest.raises(ConfigError, match="ACCORD_MAX_SOURCE_ROWS"):
        load_limits({"ACCORD_MAX_SOURCE_ROWS": value})
