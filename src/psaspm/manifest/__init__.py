"""Manifest loading: TF-M manifest lists and partition manifests -> frozen records."""

from psaspm.manifest.config import parse_config_header
from psaspm.manifest.layout import constants_dict, layout_dict
from psaspm.manifest.loader import load_system_manifest

__all__ = ["constants_dict", "layout_dict", "load_system_manifest", "parse_config_header"]
