"""kiln's optimization layer: campaign config and data, acquisition, tracking and the CLI.

Imports here stay light (no torch) so that ``kiln --help`` is fast.
"""

from optimize.config import CampaignConfig, ConfigError, load_config
from optimize.errors import DataError, KilnError

__all__ = ["CampaignConfig", "ConfigError", "DataError", "KilnError", "load_config"]
