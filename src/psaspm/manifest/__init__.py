"""Manifest loading: TF-M manifest lists and partition manifests -> frozen records."""
