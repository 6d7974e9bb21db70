"""kiln's optimization layer: campaign config and data, acquisition, tracking and the CLI.

Imports here stay light (no torch) so that ``kiln --help`` is fast.
"""

from optimize.config import CampaignConfig, ConfigError, load_config
from optimize.errors import DataError, KilnError

__all__ = ["CampaignConfig", "ConfigError", "DataError", "KilnError", "Lab", "load_config", "open_campaign"]


def __getattr__(name: str):
    """The Python API (``open_campaign``, ``Lab``: :mod:`optimize.live`), imported on first use."""
    if name in ("open_campaign", "Lab"):
        from optimize import live

        return getattr(live, name)
    raise AttributeError(f"module 'optimize' has no attribute {name!r}")
