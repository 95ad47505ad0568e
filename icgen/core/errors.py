"""Domain errors: what the core raises for bad input, written so each shell (CLI, web, API) names the fields its own way.

A message is a template in which `{field}` stands for a field's name (`{gain_db}`, `{n_working}`); `str(err)` names
fields by their option names (`--gain`, `--n-working`), `err.render(name)` by any other naming.
"""
from __future__ import annotations

import re
from collections.abc import Callable

_FIELD = re.compile(r"\{([a-z][a-z0-9_]*)\}")
SPEC_OPTIONS = {"gain_db": "gain", "ugb_hz": "ugb", "pm_deg": "pm", "gm_db": "gm", "bw3db_hz": "bw",
                "power_w": "power", "gbw_hz": "gbw", "settling_s": "settling", "slew_v_per_s": "slew",
                "cmrr_db": "cmrr", "psrr_db": "psrr", "offset_v": "offset", "swing_v": "swing",
                "noise_v_rthz": "noise", "area_m2": "area", "itail_a": "itail", "vin_v": "vin",
                "settle_to": "settle-to"}
"""The short name a person gives each spec (the option and form-field name)."""


def option_name(field: str) -> str:
    """`--gain` for a spec key, `--n-working` for a config field."""
    return "--" + SPEC_OPTIONS.get(field, field).replace("_", "-")


class IcgenError(ValueError):
    """An input that cannot be used, with a message a person can act on."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(self.render())

    def render(self, name: Callable[[str], str] = option_name) -> str:
        """The message with every `{field}` replaced by `name(field)`."""
        return _FIELD.sub(lambda m: name(m.group(1)), self.message)


class ConfigError(IcgenError):
    """A configuration value that is out of range or unknown."""
